"""Grouping by product: exact against brute force, stable pagination, never the query product."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.core.extensions import db
from backend.index import IndexPoint, SearchFilter
from backend.index.edge import EdgeIndex
from backend.services.similar import nearest_products
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


def test_public_products_match_the_product_schema(client: Any, app: Any) -> None:
    from backend.api.schemas import ProductOut, public_product
    from backend.db.products import get_product
    from backend.services.similar import product_rows

    upload(client, "S1", images.png(1), images.png(2), brand="acme", price="12.5", attributes='{"a": [1, 2]}')
    upload(client, "S2", images.png(3))
    with app.test_request_context():
        rows = product_rows(session=db.session, product_ids=[1, 2, 99])
        fast = {pid: public_product(row, "/media/") for pid, row in rows.items()}
        for pid in (1, 2):
            assert fast[pid] == ProductOut().dump(get_product(session=db.session, product_id=pid))
        assert set(fast) == {1, 2}


def unit_vector(*values: float, dim: int) -> list[float]:
    v = np.zeros(dim, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).tolist()


def test_query_expansion_pulls_in_the_photos_like_the_best_hit(tmp_path: Path) -> None:
    """The query sees product 1 clearly; product 2 is another photo of the same thing, farther from the query than
    product 3 but close to product 1: expanded by its best hit, the query ranks 2 before 3."""
    from backend.index.base import KIND_DIM, LOOK_DIM, LookQuery
    from backend.services.similar import expanded

    kinds = {1: (1.0, 0.2), 2: (1.0, 0.9, 0.0), 3: (1.0, 0.0, 0.75), 4: (0.0, 0.0, 0.0, 1.0)}
    index = EdgeIndex(tmp_path, "expansion")
    index.upsert(
        [
            IndexPoint(
                i,
                np.zeros(DIM, np.float32),
                {"product_id": i},
                look=unit_vector(1, dim=LOOK_DIM),  # one look: the kind decides
                kind=unit_vector(*k, dim=KIND_DIM),
            )
            for i, k in kinds.items()
        ]
    )
    query = LookQuery([unit_vector(1, dim=LOOK_DIM)], 0.5, 1.0, 1.0, candidates=4, kinds=[unit_vector(1, dim=KIND_DIM)])
    vectors = [np.zeros(DIM, np.float32).tolist()]
    plain = [h.id for h in index.search_batch(vectors, limit=4, look=query)[0]]
    assert plain == [1, 3, 2, 4]
    more = expanded(index, vectors, query, SearchFilter(), neighbours=1, limit=4)
    assert more.kinds[0] != query.kinds[0] and np.linalg.norm(more.kinds[0]) == pytest.approx(1.0, abs=1e-5)
    assert sorted(more.pools[0]) == [1, 2, 3, 4]  # the same candidates, ranked again
    assert [h.id for h in index.search_batch(vectors, limit=4, look=more)[0]] == [1, 2, 3, 4]
    # Nothing to expand by (no kind vectors asked for, or 0 neighbours): the query as it was.
    assert expanded(index, vectors, query, SearchFilter(), neighbours=0, limit=4) is query
    index.close()
