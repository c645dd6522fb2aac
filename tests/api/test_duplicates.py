"""Duplicate photos across products: the same file (sha256) at once, near-copies (mirrored, by the active
model's vectors, under DUPLICATE_DISTANCE) once indexed; GET /api/v1/duplicates; DUPLICATES=reject: 409."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageOps

from backend.config import Settings
from tests.utils.api import add_photos, upload
from tests.utils.datasets import photos_of
from tests.utils.images import png
from tests.utils.settings import AUTH, make_settings

MODEL = "efficientnet_lite0-imagenet"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url=database_url, default_model=MODEL)


def mirrored(path: Path) -> bytes:
    buffer = io.BytesIO()
    with Image.open(path) as image:
        ImageOps.mirror(image.convert("RGB")).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def image_json(client: Any, product_id: int) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = client.get(f"/api/v1/products/{product_id}").json["images"]
    return images


def test_same_files_and_near_copies_are_flagged(client: Any) -> None:
    dress, other = photos_of("dress", 1)[0], photos_of("shoes", 1)[0]
    original = upload(client, "ORIGINAL", dress.read_bytes()).json
    photo = original["images"][0]["id"]
    assert original["images"][0]["duplicate_of"] == []

    same = upload(client, "SAME-FILE", dress.read_bytes())
    assert same.status_code == 201
    assert same.json["images"][0]["duplicate_of"] == [
        {"product_id": original["id"], "image_id": photo, "distance": 0.0}
    ]
    copy = upload(client, "MIRRORED", mirrored(dress)).json
    different = upload(client, "DIFFERENT", other.read_bytes()).json
    flagged = image_json(client, copy["id"])[0]["duplicate_of"]
    assert {f["image_id"] for f in flagged} == {photo, same.json["images"][0]["id"]}
    assert all(0 < f["distance"] < 0.4 for f in flagged)
    assert image_json(client, different["id"])[0]["duplicate_of"] == []
    # Both sides show the pair; a second photo of the same product is never its duplicate.
    assert {f["product_id"] for f in image_json(client, original["id"])[0]["duplicate_of"]} == {
        same.json["id"],
        copy["id"],
    }
    again = add_photos(client, original["id"], dress.read_bytes()).json["items"][0]["duplicate_of"]
    assert again[0] == {"product_id": same.json["id"], "image_id": same.json["images"][0]["id"], "distance": 0.0}
    assert [f["product_id"] for f in again] == [same.json["id"], copy["id"]]  # the mirrored one once indexed
    # Similar items show the same field, from their own query.
    similar = client.get(f"/api/v1/products/{different['id']}/similar").json["items"]
    shown = {i["product"]["sku"]: i["product"]["images"][0]["duplicate_of"] for i in similar}
    assert shown["SAME-FILE"][0] == {"product_id": original["id"], "image_id": photo, "distance": 0.0}

    groups = client.get("/api/v1/duplicates", headers=AUTH).json
    assert groups["total"] == 1
    group = groups["items"][0]
    assert {p["sku"] for p in group["photos"]} == {"ORIGINAL", "SAME-FILE", "MIRRORED"}
    assert all(p["url"].startswith("/media/") for p in group["photos"])
    assert sum(p["same_file"] for p in group["pairs"]) == 2  # ORIGINAL's two files and SAME-FILE
    assert client.get("/api/v1/duplicates").status_code == 401

    # Deleting a product takes its pairs with it.
    assert client.delete(f"/api/v1/products/{same.json['id']}", headers=AUTH).status_code == 204
    left = client.get("/api/v1/duplicates", headers=AUTH).json["items"][0]
    assert {p["sku"] for p in left["photos"]} == {"ORIGINAL", "MIRRORED"}


def test_a_file_many_products_share_makes_pairs_linear_and_short_lists(client: Any) -> None:
    from backend.core.extensions import db
    from backend.db.duplicates import SAME_FILE_LINKS
    from backend.db.models import DUPLICATES_SHOWN, PhotoDuplicate
    from backend.indexing.embed import NEAR_COPIES_PER_PHOTO

    n = 60
    placeholder = png(7, 32)
    ids = [upload(client, f"PLACEHOLDER-{i}", placeholder).json["id"] for i in range(n)]
    with client.application.app_context():
        pairs = db.session.query(PhotoDuplicate).count()
    # Linear: the same-file links and the near-copy search's few per photo; every copy paired with every other
    # would be n(n-1)/2 = 1,770.
    assert pairs <= (SAME_FILE_LINKS + NEAR_COPIES_PER_PHOTO) * n
    first = image_json(client, ids[0])[0]["duplicate_of"]
    assert len(first) == DUPLICATES_SHOWN and all(f["distance"] == 0 for f in first)
    last = image_json(client, ids[-1])[0]["duplicate_of"]
    assert len(last) <= DUPLICATES_SHOWN and set(ids[:SAME_FILE_LINKS]) <= {f["product_id"] for f in last}
    groups = client.get("/api/v1/duplicates", headers=AUTH).json
    assert groups["total"] == 1 and len(groups["items"][0]["photos"]) == n  # still one group


def test_reject_answers_409_and_stores_nothing(make_app: Any) -> None:
    client = make_app("reject", default_model=MODEL, duplicates="reject").test_client()
    dress, other = photos_of("dress", 1)[0], photos_of("hat", 1)[0]
    original = upload(client, "ORIGINAL", dress.read_bytes()).json
    for sku, photo in (("SAME", dress.read_bytes()), ("MIRRORED", mirrored(dress))):
        refused = upload(client, sku, photo)
        assert refused.status_code == 409, refused.json
        assert refused.json["error"] == "duplicate_photo" and refused.json["field"] == "images"
        assert refused.json["duplicate_of"][0]["image_id"] == original["images"][0]["id"]
        assert client.get("/api/v1/products", query_string={"sku": sku}).json["total"] == 0
    different = upload(client, "DIFFERENT", other.read_bytes())
    assert different.status_code == 201
    assert add_photos(client, different.json["id"], dress.read_bytes()).status_code == 409
    # The product's own photo again is not a duplicate of another product.
    assert add_photos(client, original["id"], mirrored(dress)).status_code == 201
    assert client.get("/api/v1/products").json["total"] == 2


def test_a_feed_row_with_a_duplicate_photo_is_skipped_under_reject(make_app: Any, tmp_path: Path) -> None:
    from tests.utils.cli import cli_runner
    from tests.utils.feeds import copy_photos, feed_rows, write_csv

    app = make_app("feeds", default_model=MODEL, duplicates="reject")
    rows = feed_rows(per_category=1)
    copy_photos(rows, tmp_path)
    rows[1]["images"] = [rows[1]["images"][0], rows[0]["images"][0]]  # the hat row also shows the dress photo
    result = cli_runner(app).invoke(args=["import", str(write_csv(tmp_path / "feed.csv", rows))])
    assert result.exit_code == 3, result.output
    assert "3 rows: 2 created, 0 updated, 0 unchanged, 1 skipped" in result.output
    assert "line 3 (HAT-0): " in result.output and "is the same file as photo 1 of product 1" in result.output


def encoded(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_the_four_edits_are_flagged_by_the_copy_descriptor_and_look_alikes_are_not(client: Any) -> None:
    dresses = photos_of("dress", 6)
    original = upload(client, "ORIGINAL", dresses[0].read_bytes(), category="dress").json
    with Image.open(dresses[0]) as opened:
        photo = opened.convert("RGB")
    w, h = photo.size
    edits = {
        "MIRRORED": encoded(ImageOps.mirror(photo)),
        "CROPPED": encoded(photo.crop((w // 10, h // 10, w - w // 10, h - h // 10))),
        "RECOMPRESSED": encoded(photo, quality=30),
        "HALVED": encoded(photo.resize((w // 2, h // 2), Image.Resampling.LANCZOS)),
    }
    copies = {sku: upload(client, sku, data, category="dress").json for sku, data in edits.items()}
    others = [upload(client, f"OTHER-{n}", p.read_bytes(), category="dress").json for n, p in enumerate(dresses[1:])]
    original_image = image_json(client, original["id"])[0]["id"]
    for sku, product in copies.items():
        (image,) = image_json(client, product["id"])
        flagged = {d["image_id"] for d in image["duplicate_of"]}
        assert original_image in flagged, (sku, image["duplicate_of"])
    for product in others:  # other dresses, photographed alike: not copies
        assert image_json(client, product["id"])[0]["duplicate_of"] == []
