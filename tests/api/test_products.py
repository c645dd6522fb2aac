"""Products API on SQLite and on PostgreSQL: the happy path, and every bad input leaving nothing behind."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from backend.core.extensions import db
from backend.db.models import Product, ProductImage
from backend.domain.photos import MediaStorage
from tests.utils import images
from tests.utils.api import add_photos, upload
from tests.utils.apps import live_index
from tests.utils.settings import AUTH


def stored_files(settings: Settings) -> list[Path]:
    """The photo files (thumbnails are listed apart)."""
    return [path for _, path in MediaStorage(settings.media_root).files()]


def counts(app: Any, settings: Settings) -> tuple[int, int, int, int]:
    with app.app_context():
        return (
            db.session.query(Product).count(),
            db.session.query(ProductImage).count(),
            live_index(app).count(),
            len(stored_files(settings)),
        )


def test_create_indexes_photos_before_returning(client: Any, settings: Settings) -> None:
    response = upload(
        client, "SKU-1", images.png(1), images.jpeg(2), brand="acme", price="19.90", attributes='{"colour": "red"}'
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["sku"] == "SKU-1" and body["brand"] == "acme" and body["price"] == 19.9
    assert body["attributes"] == {"colour": "red"}
    assert [i["status"] for i in body["images"]] == ["indexed", "indexed"]
    assert {i["content_type"] for i in body["images"]} == {"image/png", "image/jpeg"}
    assert body["images"][0]["original_filename"] == "SKU-1-0.png"
    assert all(i["model_version"].startswith("untrained-") for i in body["images"])
    # Timestamps carry their UTC offset on SQLite as on PostgreSQL.
    assert body["created_at"].endswith("+00:00") and body["images"][0]["indexed_at"].endswith("+00:00")
    photo = client.get(body["images"][0]["url"])
    assert photo.status_code == 200 and photo.data == images.png(1)
    # The server names files itself: the client's filename never reaches the disk.
    assert not any("SKU-1" in p.name for p in stored_files(settings))


def test_list_paginates_and_filters_by_category(client: Any) -> None:
    for i, category in enumerate(["dress", "hat", "dress", "shoes", "dress"]):
        assert upload(client, f"L{i}", images.png(i), category=category).status_code == 201
    page = client.get("/api/v1/products?per_page=2&page=2").json
    assert [p["sku"] for p in page["items"]] == ["L2", "L3"] and page["total"] == 5
    dresses = client.get("/api/v1/products?category=dress&category=hat").json
    assert [p["sku"] for p in dresses["items"]] == ["L0", "L1", "L2", "L4"]
    assert client.get("/api/v1/products?per_page=0").status_code == 400
    assert client.get("/api/v1/products?page=99999999999999999999").json["field"] == "page"


def test_get_patch_and_payload_mirrored(client: Any, app: Any, settings: Settings) -> None:
    product = upload(client, "P1", images.png(1), category="dress", price="10").json
    upload(client, "P2", images.png(2), category="dress", price="10")
    response = client.patch(f"/api/v1/products/{product['id']}", json={"category": "hat", "price": 5}, headers=AUTH)
    assert response.status_code == 200 and response.json["category"] == "hat" and response.json["price"] == 5.0
    assert client.get(f"/api/v1/products/{product['id']}").json["category"] == "hat"
    # The point carries the new category: a hat-only search from P2 now finds P1.
    found = client.get("/api/v1/products/2/similar?category=hat").json["items"]
    assert [i["product"]["sku"] for i in found] == ["P1"]
    assert client.get("/api/v1/products/2/similar?category=dress").json["items"] == []


def test_delete_product_removes_rows_points_and_files(client: Any, app: Any, settings: Settings) -> None:
    keep = upload(client, "KEEP", images.png(1)).json
    gone = upload(client, "GONE", images.png(2), images.png(3)).json
    assert counts(app, settings) == (2, 3, 3, 3)
    assert client.delete(f"/api/v1/products/{gone['id']}", headers=AUTH).status_code == 204
    assert counts(app, settings) == (1, 1, 1, 1)
    assert len(list(MediaStorage(settings.media_root).thumbnails())) == 1  # the thumbnails went with the photos
    assert client.get(f"/api/v1/products/{gone['id']}").status_code == 404
    assert client.get(f"/api/v1/products/{keep['id']}").status_code == 200


def test_add_and_delete_photo(client: Any, app: Any, settings: Settings) -> None:
    product = upload(client, "A1", images.png(1)).json
    added = add_photos(client, product["id"], images.png(5))
    assert added.status_code == 201 and [i["status"] for i in added.json["items"]] == ["indexed"]
    image_id = added.json["items"][0]["id"]
    assert counts(app, settings) == (1, 2, 2, 2)
    assert client.delete(f"/api/v1/images/{image_id}", headers=AUTH).status_code == 204
    assert counts(app, settings) == (1, 1, 1, 1)
    assert client.delete(f"/api/v1/images/{image_id}", headers=AUTH).status_code == 404


@pytest.mark.parametrize(
    ("photo", "status", "code"),
    [
        (b"just some text, not a photo", 415, "unsupported_media_type"),
        (b"", 400, "empty_image"),
        (images.truncated_jpeg(), 400, "invalid_image"),
        (images.bomb_png(), 400, "image_too_large"),
    ],
    ids=["not-an-image", "empty", "truncated", "decompression-bomb"],
)
def test_bad_photo_rejected_and_nothing_stored(
    client: Any, app: Any, settings: Settings, photo: bytes, status: int, code: str
) -> None:
    upload(client, "EXISTING", images.png(1))
    before = counts(app, settings)
    # The bad photo comes second: the good first one must not be stored either.
    response = upload(client, "NEW", images.png(2), photo)
    assert response.status_code == status, response.json
    assert response.json["error"] == code and "NEW-1.png" in response.json["message"]
    assert counts(app, settings) == before
    assert client.get("/api/v1/products/1/similar").status_code == 200


def test_upload_over_size_limit_is_413(client: Any, app: Any, settings: Settings) -> None:
    limit = settings.max_upload_bytes
    big = images.png(0, size=16) + b"\0" * limit
    before = counts(app, settings)
    response = upload(client, "BIG", big)
    assert response.status_code == 413 and response.json["error"] == "file_too_large"
    assert counts(app, settings) == before


def test_request_over_total_limit_is_413(client: Any, settings: Settings) -> None:
    huge = b"\0" * (settings.max_upload_bytes * settings.max_images_per_request + 2 * 1024 * 1024)
    response = client.post(
        "/api/v1/products", data=huge, headers={**AUTH, "Content-Type": "multipart/form-data; boundary=x"}
    )
    assert response.status_code == 413 and response.json["error"] == "request_too_large"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_writes_need_the_admin_token(client: Any, app: Any, settings: Settings, headers: dict[str, str]) -> None:
    product = upload(client, "T1", images.png(1)).json
    before = counts(app, settings)
    assert upload(client, "T2", images.png(2), headers=headers).status_code == 401
    assert client.patch(f"/api/v1/products/{product['id']}", json={"title": "x"}, headers=headers).status_code == 401
    assert client.delete(f"/api/v1/products/{product['id']}", headers=headers).status_code == 401
    response = client.delete(f"/api/v1/images/{product['images'][0]['id']}", headers=headers)
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
    assert counts(app, settings) == before


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"price": "abc"}, "price"),
        ({"price": "-1"}, "price"),
        ({"price": "nan"}, "price"),
        ({"sku": ""}, "sku"),
        ({"sku": "has space"}, "sku"),
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),  # spaces alone were stored as an empty title
        ({"category": " \u3000 "}, "category"),
        ({"brand": "  "}, "brand"),
        ({"title": "nul\x00byte"}, "title"),
        ({"brand": "tab\there"}, "brand"),
        ({"category": "x" * 65}, "category"),
        ({"attributes": "[1, 2]"}, "attributes"),
        ({"attributes": "{not json"}, "attributes"),
    ],
)
def test_invalid_fields_are_400_naming_the_field(
    client: Any, app: Any, settings: Settings, fields: dict[str, str], field: str
) -> None:
    before = counts(app, settings)
    fields = dict(fields)  # shared between the two database runs: do not mutate
    response = upload(client, fields.pop("sku", "OK-SKU"), images.png(1), **fields)
    assert response.status_code == 400, response.json
    assert response.json["error"] == "invalid_field" and response.json["field"] == field
    assert field in response.json["message"]
    assert counts(app, settings) == before


def test_the_same_photo_twice_in_one_upload_is_400_and_nothing_stored(
    client: Any, app: Any, settings: Settings
) -> None:
    before = counts(app, settings)
    response = upload(client, "TWICE", images.png(3), images.png(3))
    assert response.status_code == 400 and response.json["field"] == "images"
    assert "same file" in response.json["message"]
    assert counts(app, settings) == before
    assert upload(client, "TWO", images.png(3), images.png(4)).status_code == 201  # two different photos


def test_missing_photos_and_fields(client: Any) -> None:
    response = upload(client, "NOPHOTO")
    assert response.status_code == 400 and response.json["field"] == "images"
    response = client.post("/api/v1/products", data={"sku": "X"}, headers=AUTH, content_type="multipart/form-data")
    assert response.status_code == 400 and response.json["field"] in {"title", "category"}


def test_duplicate_sku_is_409(client: Any, app: Any, settings: Settings) -> None:
    first = upload(client, "DUP", images.png(1))
    other = upload(client, "OTHER", images.png(2)).json
    before = counts(app, settings)
    response = upload(client, "DUP", images.png(3))
    assert response.status_code == 409 and response.json["error"] == "duplicate_sku"
    patched = client.patch(f"/api/v1/products/{other['id']}", json={"sku": "DUP"}, headers=AUTH)
    assert patched.status_code == 409
    assert counts(app, settings) == before
    assert client.get(f"/api/v1/products/{first.json['id']}").json["sku"] == "DUP"


def test_unknown_ids_are_404(client: Any) -> None:
    assert client.get("/api/v1/products/999").json["error"] == "not_found"
    assert client.patch("/api/v1/products/999", json={"title": "x"}, headers=AUTH).status_code == 404
    assert client.delete("/api/v1/products/999", headers=AUTH).status_code == 404
    assert client.delete("/api/v1/images/999", headers=AUTH).status_code == 404
    assert client.get("/api/v1/products/999/similar").status_code == 404
    assert add_photos(client, 999, images.png(1)).status_code == 404
    assert client.get("/media/ab/../../etc/passwd").status_code == 404
    # Past the database's integer range: still a plain 404, never a 500.
    assert client.get("/api/v1/products/18446744073709551615").status_code == 404
    assert client.get("/api/v1/images/18446744073709551615/similar").status_code == 404


def test_lookup_by_sku(client: Any) -> None:
    kept = upload(client, "KEPT-1", images.png(1), category="hat").json
    upload(client, "OTHER-2", images.png(2))
    found = client.get("/api/v1/products?sku=KEPT-1").json
    assert found["total"] == 1 and [p["id"] for p in found["items"]] == [kept["id"]]
    assert client.get("/api/v1/products?sku=KEPT-1&category=dress").json["total"] == 0
    assert client.get("/api/v1/products?sku=NOPE").json == {"items": [], "total": 0, "page": 1, "per_page": 20}
    bad = client.get("/api/v1/products?sku=bad%20sku")
    assert bad.status_code == 400 and bad.json["field"] == "sku"


def test_security_headers(client: Any) -> None:
    product = upload(client, "H", images.png(1)).json
    for path in ("/api/v1/health", product["images"][0]["url"], "/api/v1/products/999", "/docs"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff", path
    docs = client.get("/docs")
    assert docs.mimetype == "text/html" and "frame-ancestors 'none'" in docs.headers["Content-Security-Policy"]
    assert docs.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in client.get("/api/v1/health").headers


def test_public_errors_carry_no_exception_text(client: Any, app: Any, settings: Any) -> None:
    product = upload(client, "GONE", images.png(1)).json
    image = product["images"][0]
    (settings.media_root / image["url"].removeprefix("/media/")).unlink()  # the file vanishes
    with app.app_context():
        from backend.db.models import ImageStatus, ProductImage
        from backend.worker.enqueue import enqueue_embedding

        db.session.get(ProductImage, image["id"]).status = ImageStatus.pending
        db.session.commit()
        enqueue_embedding([image["id"]])
    again = client.get(f"/api/v1/products/{product['id']}").json["images"][0]
    assert again["status"] == "failed" and again["error"] == "cannot read photo: the stored file is missing"
    similar = client.get(f"/api/v1/images/{image['id']}/similar").json
    assert similar["reason"] == "cannot read photo: the stored file is missing"
    assert "Error" not in json.dumps(client.get("/api/v1/health").json)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_ids_past_the_column_are_404_on_every_method(client: Any, method: str) -> None:
    for path in ("/api/v1/products/99999999999", "/api/v1/images/99999999999", "/api/v1/products/0"):
        if method == "patch" and "images" in path:
            continue
        kwargs = {"json": {"title": "x"}} if method == "patch" else {}
        response = getattr(client, method)(path, headers=AUTH, **kwargs)
        expected = 405 if (method == "get" and "images" in path) else 404
        assert response.status_code == expected, (method, path, response.json)
    assert client.get("/api/v1/products/99999999999/similar").status_code == 404
    assert client.get("/api/v1/images/99999999999/similar").status_code == 404
