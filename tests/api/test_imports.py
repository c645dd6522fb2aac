"""POST /api/v1/imports: a feed with a zip of its photos (or photos under IMPORT_DIR), run in the background;
GET /api/v1/imports/<id>: progress, summary and per-row errors; GET /api/v1/products?sku=."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from tests.utils.feeds import copy_photos, feed_rows, write_csv, write_jsonl
from tests.utils.settings import AUTH, make_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url=database_url, import_dir=tmp_path / "shop")


def zipped(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def send(client: Any, feed: Path, photos: bytes | None = None, **fields: Any) -> Any:
    data: dict[str, Any] = {"feed": (io.BytesIO(feed.read_bytes()), feed.name), **fields}
    if photos is not None:
        data["photos"] = (io.BytesIO(photos), "photos.zip")
    return client.post("/api/v1/imports", data=data, headers=AUTH, content_type="multipart/form-data")


def finished(client: Any, response: Any, timeout_s: float = 120) -> dict[str, Any]:
    assert response.status_code == 202, response.json
    location = response.headers["Location"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(location, headers=AUTH).json
        if body["state"] in ("done", "failed"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"import still {body['state']} after {timeout_s} s")


def test_a_feed_with_a_zip_imports_twice_the_second_time_unchanged(client: Any, tmp_path: Path) -> None:
    rows = feed_rows()
    copy_photos(rows, tmp_path / "upload")
    (tmp_path / "upload" / "notes.txt").write_text("not a photo")
    bad = ['{"sku": "BAD", "title": "t", "category": "hat", "price": -3, "images": ["photos/hat/x.jpg"]}', "[]"]
    bad.append('{"sku": "TXT", "title": "t", "category": "hat", "images": ["notes.txt"]}')
    feed = write_jsonl(tmp_path / "catalog.jsonl", rows, raw=bad)
    photos = zipped(tmp_path / "upload")

    first = send(client, feed, photos)
    assert first.json["state"] in ("queued", "running", "done") and first.json["feed_name"] == "catalog.jsonl"
    body = finished(client, first)
    assert body["state"] == "done" and body["rows_total"] == 9 and body["rows_done"] == 9
    assert body["summary"] | {"skipped_by_reason": None} == {
        "rows": 9,
        "created": 6,
        "updated": 0,
        "unchanged": 0,
        "skipped": 3,
        "skipped_by_reason": None,
        "photos_added": 12,
        "photos_removed": 0,
    }
    assert body["summary"]["skipped_by_reason"] == {"bad price": 1, "bad JSON": 1, "unreadable photo": 1}
    assert [(e["line"], e["sku"], e["reason"]) for e in body["errors"]] == [
        (7, "BAD", "bad price"),
        (8, None, "bad JSON"),
        (9, "TXT", "unreadable photo"),
    ]
    found = client.get("/api/v1/products", query_string={"sku": "HAT-1"}).json
    assert found["total"] == 1 and found["items"][0]["attributes"]["colour"] == "red"
    assert [i["status"] for i in found["items"][0]["images"]] == ["indexed", "indexed"]
    listing = client.get("/api/v1/products", query_string={"per_page": 100}).json
    image_ids = sorted(i["id"] for p in listing["items"] for i in p["images"])

    again = finished(client, send(client, feed, photos))
    assert again["summary"]["unchanged"] == 6 and again["summary"]["created"] == again["summary"]["updated"] == 0
    relisted = client.get("/api/v1/products", query_string={"per_page": 100}).json
    assert sorted(i["id"] for p in relisted["items"] for i in p["images"]) == image_ids
    assert client.get("/api/v1/products", query_string={"sku": "NOPE"}).json["total"] == 0


def test_photos_under_import_dir_and_a_dry_run(client: Any, tmp_path: Path) -> None:
    rows = feed_rows(per_category=1)
    copy_photos(rows, tmp_path / "shop")
    feed = write_csv(tmp_path / "feed.csv", rows)
    dry = finished(client, send(client, feed, dry_run="true"))
    assert dry["dry_run"] and dry["photos_from"] == "folder" and dry["summary"]["created"] == 3
    assert client.get("/api/v1/products").json["total"] == 0
    real = finished(client, send(client, feed))
    assert real["summary"]["created"] == 3 and client.get("/api/v1/products").json["total"] == 3


def test_refusals(client: Any, tmp_path: Path, make_app: Any) -> None:
    feed = write_csv(tmp_path / "feed.csv", feed_rows(per_category=1))
    assert client.post("/api/v1/imports", data={}, content_type="multipart/form-data").status_code == 401
    text = tmp_path / "feed.txt"
    text.write_text("sku,title\n")
    wrong = send(client, text)
    assert wrong.status_code == 400 and wrong.json["field"] == "feed"
    not_zip = send(client, feed, b"PK but not a zip")
    assert not_zip.status_code == 400 and not_zip.json["field"] == "photos"
    assert client.get("/api/v1/imports/999", headers=AUTH).status_code == 404
    assert client.get("/api/v1/imports/1").status_code == 401
    no_folder = make_app("nofolder").test_client()
    refused = send(no_folder, feed)
    assert refused.status_code == 400 and "IMPORT_DIR" in refused.json["message"]
    small = make_app("small", import_max_mb=0.01).test_client()
    assert send(small, feed, b"x" * 20_000).status_code == 413


def test_a_feed_without_its_header_fails_with_the_reason(client: Any, tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text("sku,title\nA,b\n")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x" * 5000)
    body = finished(client, send(client, feed, zipped(tmp_path / "photos")))
    assert body["state"] == "failed" and "the CSV header lacks category, images" in body["error"]
    assert client.get("/api/v1/products").json["total"] == 0
    stored = client.application.config["SETTINGS"].imports_dir / str(body["id"])
    assert not stored.exists()  # the feed and zip of a failed import were kept for ever
