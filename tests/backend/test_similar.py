"""Grouping by product: exact against brute force, stable pagination, never the query product."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.extensions import db
from backend.index import IndexPoint, SearchFilter
from backend.index.edge import EdgeIndex
from backend.similar import nearest_products
from tests.utils import images
from tests.utils.api import upload

DIM = 1000


def brute_force(data: np.ndarray, owners: np.ndarray, queries: np.ndarray, exclude: int) -> list[tuple[int, float]]:
    best: dict[int, float] = {}
    for q in queries:
        for d, owner in zip(np.linalg.norm(data - q, axis=1), owners, strict=True):
            if owner != exclude and d < best.get(int(owner), np.inf):
                best[int(owner)] = float(d)
    return sorted(best.items(), key=lambda kv: (kv[1], kv[0]))


@pytest.fixture
def clustered(tmp_path: Path) -> tuple[EdgeIndex, np.ndarray, np.ndarray]:
    """300 products with 1-6 photos each, in clusters, so many photos of one product are close."""
    rng = np.random.default_rng(42)
    centres = rng.normal(size=(8, DIM)) * 5
    owners, rows = [], []
    for product in range(300):
        centre = centres[product % 8] + rng.normal(size=DIM)
        for _ in range(rng.integers(1, 7)):
            owners.append(product)
            rows.append(centre + rng.normal(size=DIM) * 0.3)
    data = np.asarray(rows, dtype=np.float32)
    index = EdgeIndex(tmp_path, "similar")
    index.upsert([IndexPoint(i, data[i], {"product_id": int(o)}) for i, o in enumerate(owners)])
    yield index, data, np.asarray(owners)
    index.close()


def test_grouping_is_exact_for_multi_photo_queries(clustered: Any) -> None:
    index, data, owners = clustered
    query_product = 17
    queries = data[owners == query_product]
    assert len(queries) >= 1
    expected = brute_force(data, owners, queries, exclude=query_product)[:25]
    got = nearest_products(index=index, vectors=list(queries), where=SearchFilter(exclude_product_ids=(17,)), limit=25)
    assert [n.product_id for n in got] == [p for p, _ in expected]
    assert [n.distance for n in got] == pytest.approx([d for _, d in expected], rel=1e-4)
    assert len({n.product_id for n in got}) == 25 and query_product not in {n.product_id for n in got}


def test_pages_concatenate_to_the_whole_list(clustered: Any) -> None:
    index, data, owners = clustered
    queries = list(data[owners == 3])
    where = SearchFilter(exclude_product_ids=(3,))
    whole = nearest_products(index=index, vectors=queries, where=where, limit=60)
    pages = [nearest_products(index=index, vectors=queries, where=where, limit=7, offset=o) for o in range(0, 60, 7)]
    flat = [n.product_id for page in pages for n in page][:60]
    assert flat == [n.product_id for n in whole]
    assert len(set(flat)) == 60


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


def test_public_products_match_the_product_schema(client: Any, app: Any) -> None:
    from backend.api.schemas import ProductOut, public_product
    from backend.db.products import get_product
    from backend.similar import product_rows

    upload(client, "S1", images.png(1), images.png(2), brand="acme", price="12.5", attributes='{"a": [1, 2]}')
    upload(client, "S2", images.png(3))
    with app.test_request_context():
        rows = product_rows(session=db.session, product_ids=[1, 2, 99])
        fast = {pid: public_product(row, "/media/") for pid, row in rows.items()}
        for pid in (1, 2):
            assert fast[pid] == ProductOut().dump(get_product(session=db.session, product_id=pid))
        assert set(fast) == {1, 2}


@pytest.mark.parametrize("strategy", ["mean", "closest"])
def test_multi_photo_product_query_strategies(tmp_path: Path, strategy: str) -> None:
    from flask_migrate import upgrade

    from backend.app import create_app
    from backend.index import close_all
    from tests.conftest import make_settings
    from tests.utils import live_index

    settings = make_settings(tmp_path / "var", product_query=strategy)
    app = create_app(settings)
    with app.app_context():
        upgrade()
    client = app.test_client()
    base = images.noise(30)
    query = upload(client, "Q", images.encode(base), images.encode(images.stripes())).json
    near = upload(client, "NEAR", images.encode(images.near_copy(base))).json
    item = client.get(f"/api/v1/products/{query['id']}/similar").json["items"][0]
    assert item["product"]["sku"] == "NEAR"
    with app.app_context():
        stored = live_index(app).vectors([i["id"] for i in query["images"]] + [near["images"][0]["id"]])
    q1, q2, n = (np.asarray(stored[i], dtype=np.float32) for i in sorted(stored))
    expected = (
        np.linalg.norm(n - (q1 + q2) / 2) if strategy == "mean" else min(np.linalg.norm(n - q1), np.linalg.norm(n - q2))
    )
    assert item["distance"] == pytest.approx(float(expected), rel=1e-4)
    close_all()
