"""`lookalike import FEED.csv|FEED.jsonl`: upsert by sku, bad rows skipped with line and reason, --dry-run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backend.core.extensions import db
from backend.db.models import ImageStatus, Product, ProductImage
from backend.index import SearchFilter
from tests.utils import images
from tests.utils.apps import live_index
from tests.utils.cli import cli_runner
from tests.utils.feeds import copy_photos, feed_rows, write_csv, write_jsonl
from tests.utils.vectors import search_one

BAD_CSV = [
    ",no sku,hat,,1,,photos/hat/x.jpg",
    "BAD-PRICE,bad price,hat,,cheap,,photos/dress/a.jpg",
    'BAD-JSON,bad json,hat,,1,"{colour: red}",photos/dress/a.jpg',
    "NOT-A-PHOTO,not a photo,hat,,1,,notes.txt",
    "GONE,missing photo,hat,,1,,photos/hat/gone.jpg",
    "ESCAPE,outside,hat,,1,,../secret.jpg",
]


def catalog(app: Any) -> dict[str, Any]:
    with app.app_context():
        products = db.session.scalars(select(Product).order_by(Product.sku)).all()
        return {
            p.sku: {
                "price": float(p.price) if p.price is not None else None,
                "title": p.title,
                "attributes": p.attributes,
                "images": {i.id: (i.status, i.indexed_at, i.sha256) for i in p.images},
            }
            for p in products
        }


def run(app: Any, *args: str) -> Any:
    return cli_runner(app).invoke(args=["import", *args])


def test_csv_feed_upserts_by_sku_and_reports_bad_rows(app: Any, tmp_path: Path) -> None:
    rows = feed_rows()
    copy_photos(rows, tmp_path)
    (tmp_path / "notes.txt").write_text("not a photo")
    feed = write_csv(
        tmp_path / "feed.csv",
        rows,
        raw=[*BAD_CSV, ",".join(["DRESS-0", "again", "dress", "", "", "", rows[0]["images"][0]])],
    )

    first = run(app, str(feed))
    assert first.exit_code == 3, first.output
    assert "13 rows: 6 created, 0 updated, 0 unchanged, 7 skipped" in first.output
    assert "photos: 12 added, 0 removed" in first.output
    for expected in (
        "line 8: sku: missing",
        "line 9 (BAD-PRICE): price: Not a valid number.",
        "line 10 (BAD-JSON): attributes: not JSON",
        "line 11 (NOT-A-PHOTO): notes.txt: not a JPEG, PNG, GIF or WebP image",
        "line 12 (GONE): photos/hat/gone.jpg: no such file",
        "line 13 (ESCAPE): ../secret.jpg: photo paths are relative to the feed and stay inside it",
        "line 14 (DRESS-0): sku 'DRESS-0' is already on line 2 of this feed",
    ):
        assert expected in first.output
    assert '"indexed": 12' in first.output
    before = catalog(app)
    assert sorted(before) == ["DRESS-0", "DRESS-1", "HAT-0", "HAT-1", "SHOES-0", "SHOES-1"]
    assert before["HAT-1"]["attributes"] == {"colour": "red", "size": ["m", "l"]} and before["HAT-1"]["price"] == 11.0

    # The same feed again: every good row unchanged, nothing written, nothing embedded again.
    again = run(app, str(feed))
    assert "13 rows: 0 created, 0 updated, 6 unchanged, 7 skipped" in again.output
    assert "photos: 0 added, 0 removed" in again.output
    assert catalog(app) == before

    # A changed feed: a new price, one photo swapped for another, a new attribute value.
    rows[0]["price"] = 99.5
    rows[0]["attributes"] = {"colour": "green"}
    kept = rows[1]["images"][0]
    rows[1]["images"] = [kept, rows[2]["images"][0]]
    changed = run(app, str(write_csv(tmp_path / "feed.csv", rows)))
    assert changed.exit_code == 0, changed.output
    assert "6 rows: 0 created, 2 updated, 4 unchanged, 0 skipped" in changed.output
    assert "photos: 1 added, 1 removed" in changed.output
    after = catalog(app)
    assert after["DRESS-0"]["price"] == 99.5 and after["DRESS-0"]["attributes"] == {"colour": "green"}
    assert after["DRESS-0"]["images"] == before["DRESS-0"]["images"]  # fields only: no photo embedded again
    old, new = before["DRESS-1"]["images"], after["DRESS-1"]["images"]
    assert len(new) == 2 and len(set(old) & set(new)) == 1  # one kept as it was, one new
    assert all(status == ImageStatus.indexed for status, _, _ in new.values())
    with app.app_context():
        index = live_index(app)
        gone = next(iter(set(old) - set(new)))
        assert gone not in index.ids() and set(new) <= index.ids()
        # The index follows the new price: the product is found by a price filter.
        dress0 = db.session.scalar(select(Product).where(Product.sku == "DRESS-0"))
        assert dress0 is not None
        vector = index.vectors([dress0.images[0].id])[dress0.images[0].id]
        hits = search_one(index, vector, limit=5, where=SearchFilter(price_min=99, price_max=100))
        assert {h.product_id for h in hits} == {dress0.id}


def test_dry_run_says_what_would_change_and_writes_nothing(app: Any, tmp_path: Path) -> None:
    rows = feed_rows(per_category=1)
    copy_photos(rows, tmp_path)
    feed = write_csv(tmp_path / "feed.csv", rows)
    dry = run(app, str(feed), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 rows: 3 would be created, 0 would be updated, 0 unchanged, 0 skipped" in dry.output
    assert catalog(app) == {}
    assert list((tmp_path / "var" / "media").glob("**/*.*")) == []
    assert run(app, str(feed)).exit_code == 0
    rows[0]["title"] = "renamed"
    dry = run(app, str(write_csv(feed, rows)), "--dry-run")
    assert "0 would be created, 1 would be updated, 2 unchanged" in dry.output
    assert catalog(app)["DRESS-0"]["title"] == "dress number 0"


def test_jsonl_feed_with_photos_elsewhere(app: Any, tmp_path: Path) -> None:
    rows = feed_rows(per_category=1)
    copy_photos(rows, tmp_path / "shop")
    rows[2]["price"] = None
    rows[2]["brand"] = None
    raw = [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({"sku": "NO-LIST", "title": "t", "category": "hat", "images": "a.jpg"}),
    ]
    feed = write_jsonl(tmp_path / "export.jsonl", rows, raw=raw)
    result = run(app, str(feed), "--photos", str(tmp_path / "shop"))
    assert result.exit_code == 3, result.output
    assert "6 rows: 3 created, 0 updated, 0 unchanged, 3 skipped" in result.output
    assert "line 4: not a JSON object" in result.output and "line 5: not a JSON object" in result.output
    assert "line 6 (NO-LIST): images: must be a list of paths" in result.output
    shoes = catalog(app)["SHOES-0"]
    assert shoes["price"] is None and len(shoes["images"]) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("feed.csv", "sku,title,category\nA,b,c\n", "the CSV header lacks images"),
        ("feed.csv", "", "the feed is empty"),
        # DictReader kept the last "title" column: the first one's values vanished without a word.
        ("feed.csv", "sku,title,category,images,title\nA,b,c,,d\n", "the CSV header names title more than once"),
        ("feed.jsonl", b"\xff\xfe{}\n", "not UTF-8"),
    ],
)
def test_an_unreadable_feed_exits_1_and_writes_nothing(
    app: Any, tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run(app, str(path))
    assert result.exit_code == 1 and message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ProductImage)) == 0


def test_a_bad_byte_far_into_a_feed_is_found_before_any_row_is_written(app: Any, tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(images.png(1))
    good = "sku,title,category,images\n" + "".join(f"S{n:04d},Title {n},dress,p.png\n" for n in range(300))
    assert len(good.encode()) > 8192  # past the first read of the text decoder
    (tmp_path / "feed.csv").write_bytes(good.encode() + b"BAD,\xff,dress,p.png\n")
    result = run(app, str(tmp_path / "feed.csv"))
    assert result.exit_code == 1
    assert f"not UTF-8 text (invalid start byte at byte {len(good.encode()) + 4})" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Product)) == 0  # 136 were written before


def test_a_named_pipe_in_the_photo_folder_is_a_skipped_row_not_a_hang(app: Any, tmp_path: Path) -> None:
    import os

    (tmp_path / "p.png").write_bytes(images.png(1))
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading waited for a writer for ever
    (tmp_path / "feed.csv").write_text("sku,title,category,images\nGOOD,Good,dress,p.png\nPIPE,Pipe,dress,pipe.png\n")
    result = run(app, str(tmp_path / "feed.csv"))
    assert result.exit_code == 3 and "line 3 (PIPE): pipe.png: not a regular file" in result.output
    assert "1 created" in result.output


def test_feed_options_are_checked(app: Any, tmp_path: Path) -> None:
    (tmp_path / "feed.txt").write_text("sku\n")
    assert "a feed is a .csv or .jsonl file" in run(app, str(tmp_path / "feed.txt")).output
    assert run(app, str(tmp_path / "feed.txt")).exit_code == 2
    folder = run(app, str(tmp_path), "--photos", str(tmp_path))  # a folder holds its own photos
    assert folder.exit_code == 2 and "--photos is for feeds" in folder.output


GOOD_AROUND = ["GOOD-1,One,dress,p.png", "{bad}", 'GOOD-2,"Two, with a comma",dress,p.png', "GOOD-3,,dress,p.png"]


@pytest.mark.parametrize(
    ("rows", "bad", "cause"),
    [
        # the reader stopped counting on the over-long line: every later row was reported a line early
        (GOOD_AROUND, "LONG," + "x" * 140_000 + ",dress,p.png", "over 131072 characters"),
        # a quote never closed: the rest of the feed was read as one title, silently
        (GOOD_AROUND, 'QUOTE,"Open quote,dress,p.png', "on line 4: is a quote opened on this line never closed?"),
        # ... also when no later quote closes it: the reader reached the end of the feed
        (
            ["GOOD-1,One,dress,p.png", "{bad}", "GOOD-2,Two,dress,p.png", "GOOD-3,,dress,p.png"],
            'QUOTE,"Open quote,dress,p.png',
            "a quoted value opened on this line is never closed",
        ),
    ],
)
def test_a_row_the_csv_reader_refuses_is_reported_at_its_line_and_the_rest_go_in(
    app: Any, tmp_path: Path, rows: list[str], bad: str, cause: str
) -> None:
    (tmp_path / "p.png").write_bytes(images.png(1))
    lines = [bad if row == "{bad}" else row for row in rows]
    (tmp_path / "feed.csv").write_text("sku,title,category,images\n" + "\n".join(lines) + "\n")
    result = run(app, str(tmp_path / "feed.csv"))
    assert result.exit_code == 3, result.output
    assert "line 3: cannot be read as CSV: " in result.output and cause in result.output
    assert "line 5 (GOOD-3): title: Missing data" in result.output  # the line it is on
    with app.app_context():
        titles = dict(db.session.execute(select(Product.sku, Product.title)).all())
    assert set(titles) == {"GOOD-1", "GOOD-2"} and titles["GOOD-1"] == "One"
