"""The similar-items routes: ordering, one item per product, filters, errors, search by photo."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from backend.core.extensions import db
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index


def test_similar_endpoint_orders_near_copy_first(client: Any) -> None:
    base = images.noise(5)
    query = upload(client, "Q", images.encode(base)).json
    upload(client, "FAR", images.encode(images.stripes()))
    upload(client, "NEAR", images.encode(images.near_copy(base)))
    body = client.get(f"/api/v1/products/{query['id']}/similar?limit=5").json
    assert [i["product"]["sku"] for i in body["items"]] == ["NEAR", "FAR"]
    distances = [i["distance"] for i in body["items"]]
    assert distances == sorted(distances)
    assert body["model_version"].startswith("untrained-") and body["limit"] == 5 and body["offset"] == 0
    assert body["items"][0]["image_id"] == body["items"][0]["product"]["images"][0]["id"]


def test_one_item_per_product_using_its_closest_photo(client: Any) -> None:
    base = images.noise(8)
    query = upload(client, "Q", images.encode(base)).json
    multi = upload(client, "MULTI", images.encode(images.stripes()), images.encode(images.near_copy(base))).json
    upload(client, "OTHER", images.png(99))
    items = client.get(f"/api/v1/products/{query['id']}/similar").json["items"]
    assert [i["product"]["sku"] for i in items] == ["MULTI", "OTHER"]
    assert items[0]["image_id"] == multi["images"][1]["id"]


def test_similar_parameter_errors(client: Any) -> None:
    upload(client, "Q", images.png(1))
    for bad in ("limit=0", "limit=101", "limit=abc", "offset=-1", "price_min=-3", "max_distance=x"):
        response = client.get(f"/api/v1/products/1/similar?{bad}")
        assert response.status_code == 400, bad
        assert response.json["field"] == bad.split("=")[0]
    response = client.get("/api/v1/products/1/similar?price_min=5&price_max=1")
    assert response.status_code == 400 and response.json["field"] == "price_min"


def test_similar_to_one_photo_leaves_its_product_out(client: Any) -> None:
    base = images.noise(11)
    query = upload(client, "Q", images.encode(base), images.encode(images.stripes())).json
    upload(client, "NEAR", images.encode(images.near_copy(base)))
    upload(client, "STRIPES", images.encode(images.stripes(color=(250, 250, 240))))
    by_noise = client.get(f"/api/v1/images/{query['images'][0]['id']}/similar").json
    assert by_noise["items"][0]["product"]["sku"] == "NEAR"
    by_stripes = client.get(f"/api/v1/images/{query['images'][1]['id']}/similar").json
    assert by_stripes["items"][0]["product"]["sku"] == "STRIPES"
    assert "Q" not in {i["product"]["sku"] for i in by_stripes["items"]}
    assert client.get("/api/v1/images/999/similar").status_code == 404
    assert client.get(f"/api/v1/images/{query['images'][0]['id']}/similar?limit=0").status_code == 400


def test_search_by_uploaded_photo(client: Any, app: Any, settings: Any) -> None:
    base = images.noise(12)
    upload(client, "FAR", images.encode(images.stripes()), category="hat")
    upload(client, "NEAR", images.encode(images.near_copy(base)), category="dress")
    photo = images.encode(base, "JPEG")

    def search(data: bytes, params: str = "") -> Any:
        return client.post(
            f"/api/v1/search{params}", data={"image": (io.BytesIO(data), "q.jpg")}, content_type="multipart/form-data"
        )

    body = search(photo).json
    assert [i["product"]["sku"] for i in body["items"]] == ["NEAR", "FAR"]
    assert [i["product"]["sku"] for i in search(photo, "?category=hat").json["items"]] == ["FAR"]
    assert search(b"plain text").status_code == 415
    assert search(images.truncated_jpeg()).status_code == 400
    assert search(photo, "?limit=500").json["field"] == "limit"
    missing = client.post("/api/v1/search", data={}, content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.json["field"] == "image"
    with app.app_context():  # searching stores nothing
        from backend.db.models import ProductImage

        assert db.session.query(ProductImage).count() == 2


@pytest.mark.parametrize("strategy", ["mean", "closest"])
def test_multi_photo_product_query_strategies(make_app: Any, strategy: str) -> None:
    app = make_app(product_query=strategy)
    client = app.test_client()
    base = images.noise(30)
    query = upload(client, "Q", images.encode(base), images.encode(images.stripes())).json
    near = upload(client, "NEAR", images.encode(images.near_copy(base))).json
    item = client.get(f"/api/v1/products/{query['id']}/similar?look=0").json["items"][0]  # the 1000-d distance
    assert item["product"]["sku"] == "NEAR"
    with app.app_context():
        stored = live_index(app).vectors([i["id"] for i in query["images"]] + [near["images"][0]["id"]])
    q1, q2, n = (np.asarray(stored[i], dtype=np.float32) for i in sorted(stored))
    expected = (
        np.linalg.norm(n - (q1 + q2) / 2) if strategy == "mean" else min(np.linalg.norm(n - q1), np.linalg.norm(n - q2))
    )
    assert item["distance"] == pytest.approx(float(expected), rel=1e-4)


def test_an_answer_the_fast_encoder_refuses_is_written_by_the_standard_one(client: Any) -> None:
    """orjson writes the similar items; an attribute's integer above 64 bits (valid JSON) is written all the same."""
    import json

    query = upload(client, "Q", images.png(21)).json
    serial = 2**70 + 1
    upload(client, "BIG", images.png(22), attributes=json.dumps({"serial": serial, "colour": "red"}))
    response = client.get(f"/api/v1/products/{query['id']}/similar")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert json.loads(response.data)["items"][0]["product"]["attributes"] == {"serial": serial, "colour": "red"}
    plain = client.get(f"/api/v1/products/{query['id']}/similar?limit=1&offset=0&category=dress")
    assert plain.json["items"][0]["product"]["sku"] == "BIG" and plain.headers["X-Lookalike-Model"]
