"""One contract, two implementations: Qdrant Edge, and the Qdrant server API (in-process mode)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from backend.index import Hit, IndexPoint, IndexUnavailable, SearchFilter, VectorIndex
from backend.index.base import COPY, COPY_DIM, KIND, KIND_DIM, LOOK, LOOK_DIM, LookQuery, Steer
from backend.index.edge import EdgeIndex
from backend.index.server import ServerIndex
from tests.utils.vectors import search_one

DIM = 1000


@pytest.fixture(params=["edge", "server"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    if request.param == "edge":
        idx: VectorIndex = EdgeIndex(tmp_path, "contract")
    else:
        idx = ServerIndex(QdrantClient(location=":memory:"), "contract")
    yield idx
    idx.close()


def vec(x: float, y: float = 0.0) -> list[float]:
    v = [0.0] * DIM
    v[0], v[1] = x, y
    return v


def catalog() -> list[IndexPoint]:
    """Points along one axis, so that distances to vec(0) are their x."""
    rows = [
        (1, 1.0, 10, "dress", "acme", 10.0),
        (2, 2.0, 10, "dress", "acme", 10.0),
        (3, 3.0, 20, "hat", "acme", 30.0),
        (4, 4.0, 30, "dress", "zeta", 50.0),
        (5, 5.0, 40, "shoes", None, None),
    ]
    return [
        IndexPoint(i, vec(x), {"product_id": p, "category": c, "brand": b, "price": price})
        for i, x, p, c, b, price in rows
    ]


def ids(hits: list[Hit]) -> list[int]:
    return [h.id for h in hits]


def test_search_returns_euclidean_distance_ascending(index: VectorIndex) -> None:
    index.upsert(catalog())
    hits = search_one(index, vec(0, 0), limit=3)
    assert ids(hits) == [1, 2, 3]
    assert [h.distance for h in hits] == pytest.approx([1.0, 2.0, 3.0])
    assert [h.product_id for h in hits] == [10, 10, 20]
    assert search_one(index, vec(0, 3), limit=1)[0].distance == pytest.approx(np.hypot(1, 3), rel=1e-5)


def test_filters_or_within_a_field_and_across_fields(index: VectorIndex) -> None:
    index.upsert(catalog())
    assert ids(search_one(index, vec(0), limit=10, where=SearchFilter(categories=("hat", "shoes")))) == [3, 5]
    both = SearchFilter(categories=("dress",), brands=("zeta",))
    assert ids(search_one(index, vec(0), limit=10, where=both)) == [4]
    priced = SearchFilter(price_min=10.0, price_max=30.0)
    assert ids(search_one(index, vec(0), limit=10, where=priced)) == [1, 2, 3]
    assert ids(search_one(index, vec(0), limit=10, where=SearchFilter(exclude_product_ids=(10, 30)))) == [3, 5]
    assert ids(search_one(index, vec(0), limit=10, max_distance=2.5)) == [1, 2]


def test_upsert_is_idempotent_and_replaces(index: VectorIndex) -> None:
    index.upsert(catalog())
    index.upsert(catalog())
    assert index.count() == 5
    index.upsert([IndexPoint(1, vec(9.0), {"product_id": 10, "category": "dress", "brand": None, "price": None})])
    assert index.count() == 5
    assert index.vectors([1])[1][0] == pytest.approx(9.0)
    assert ids(search_one(index, vec(0), limit=1)) == [2]


def test_delete_by_id(index: VectorIndex) -> None:
    index.upsert(catalog())
    index.delete([3, 999])
    assert index.ids() == {1, 2, 4, 5}
    assert index.vectors([1, 3]).keys() == {1}
    assert index.count() == index.count(exact=False) == 4  # the engine's tally knows of the delete


def test_set_product_payload_changes_what_filters_see(index: VectorIndex) -> None:
    index.upsert(catalog())
    index.set_product_payload(10, {"category": "hat", "price": 99.0})
    assert ids(search_one(index, vec(0), limit=10, where=SearchFilter(categories=("hat",)))) == [1, 2, 3]
    assert ids(search_one(index, vec(0), limit=10, where=SearchFilter(price_min=90.0))) == [1, 2]
    assert ids(search_one(index, vec(0), limit=10, where=SearchFilter(brands=("acme",)))) == [1, 2, 3]  # others stay


def test_search_batch_answers_each_vector(index: VectorIndex) -> None:
    index.upsert(catalog())
    batches = index.search_batch([vec(0), vec(5.2)], limit=2, where=SearchFilter(exclude_product_ids=(20,)))
    assert [ids(hits) for hits in batches] == [[1, 2], [5, 4]]
    assert index.search_batch([], limit=3) == []


def test_many_points_and_scroll(index: VectorIndex) -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(1500, DIM)).astype(np.float32)
    index.upsert([IndexPoint(i + 1, data[i], {"product_id": i}) for i in range(len(data))])
    assert index.count() == index.count(exact=False) == 1500 and index.ids() == set(range(1, 1501))
    exact = np.argsort(np.linalg.norm(data - data[7], axis=1))[:5] + 1
    assert ids(search_one(index, data[7], limit=5)) == exact.tolist()


def test_edge_shard_survives_reopen(tmp_path: Path) -> None:
    first = EdgeIndex(tmp_path, "persist")
    first.upsert(catalog())
    first.close()
    again = EdgeIndex(tmp_path, "persist")
    assert again.count() == 5 and ids(search_one(again, vec(0), limit=2)) == [1, 2]
    again.close()


def test_ready_once_the_data_is_in_memory(index: VectorIndex) -> None:
    index.upsert(catalog())
    warm = getattr(index, "warm", None)  # Edge reads its files in the background; a server is ready at once
    if warm is not None:
        assert warm.wait(timeout=30)
    assert index.ready is True


@pytest.fixture(params=["edge", "server"])
def attr_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorIndex]:
    keys = ("colour", "size")
    if request.param == "edge":
        idx: VectorIndex = EdgeIndex(tmp_path, "attrs", attribute_keys=keys)
    else:
        idx = ServerIndex(QdrantClient(location=":memory:"), "attrs", attribute_keys=keys)
    yield idx
    idx.close()


def test_attribute_filters_or_within_a_key_and_across_keys(attr_index: VectorIndex) -> None:
    attrs = {
        1: {"colour": ["red"], "size": ["m", "l"]},
        2: {"colour": ["blue"], "size": ["m"]},
        3: {"colour": ["green"], "size": ["l"]},
        4: {},
    }
    attr_index.upsert([IndexPoint(i, vec(i), {"product_id": i * 10, "attrs": a}) for i, a in attrs.items()])

    def found(**wanted: tuple[str, ...]) -> list[int]:
        where = SearchFilter(attributes=tuple(sorted(wanted.items())))
        return ids(search_one(attr_index, vec(0), limit=10, where=where))

    assert found(colour=("red", "blue")) == [1, 2]
    assert found(colour=("red", "blue"), size=("l",)) == [1]
    assert found(size=("l",)) == [1, 3]
    assert found(colour=("black",)) == []
    # A product's attributes change: setting `attrs` replaces the whole object, so an old value stops matching.
    attr_index.set_product_payload(10, {"attrs": {"colour": ["black"]}})
    assert found(colour=("black",)) == [1]
    assert found(size=("m",)) == [2]
    assert attr_index.payloads()[1]["attrs"] == {"colour": ["black"]}


def unit(*values: float, dim: int) -> list[float]:
    v = np.zeros(dim, dtype=np.float32)
    v[: len(values)] = values
    return (v / np.linalg.norm(v)).tolist()


def test_look_blends_the_two_distances_among_the_nearest_candidates(index: VectorIndex) -> None:
    assert index.descriptors
    # By the 1000-d vector: 1, 2, 3, 4. By the look: 3 matches the query, then 4, 2, 1.
    looks = {
        1: unit(0, 1, dim=LOOK_DIM),
        2: unit(1, 2, dim=LOOK_DIM),
        3: unit(1, dim=LOOK_DIM),
        4: unit(3, 1, dim=LOOK_DIM),
    }
    index.upsert([IndexPoint(p.id, p.vector, p.payload, look=looks.get(p.id)) for p in catalog()])
    query = LookQuery([unit(1, dim=LOOK_DIM)], weight=0.0, embedding_scale=1.0, look_scale=1.0, candidates=3)
    assert ids(index.search_batch([vec(0)], limit=3, look=query)[0]) == [1, 2, 3]
    hits = index.search_batch([vec(0)], limit=3, look=replace(query, weight=1.0))[0]
    assert ids(hits) == [3, 2, 1]  # only the 3 nearest by the 1000-d vector are candidates: 4 is not
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    half = index.search_batch([vec(0)], limit=3, look=replace(query, weight=0.5, look_scale=0.1))[0]
    assert ids(half) == [3, 2, 1]  # the look's distances count ten times more
    dress = index.search_batch(
        [vec(0)], limit=3, where=SearchFilter(categories=("dress",)), look=replace(query, weight=1.0)
    )
    assert ids(dress[0]) == [4, 2, 1]  # the filter holds for the candidates
    assert index.named_vectors([3], LOOK)[3] == pytest.approx(looks[3], abs=1e-6)


def test_the_kind_vector_picks_the_looks_candidates(index: VectorIndex) -> None:
    assert index.descriptors and index.kinds
    # By the 1000-d vector 1, 2, 3, 4, 5; by the kind vector 5, 4, 3, then 2 and 1 far away.
    kinds = {1: unit(0, 1, dim=KIND_DIM), 2: unit(0.3, 1, dim=KIND_DIM), 3: unit(1, 0.5, dim=KIND_DIM)}
    kinds |= {4: unit(1, 0.2, dim=KIND_DIM), 5: unit(1, dim=KIND_DIM)}
    looks = {i: unit(1, 0.1 * i, dim=LOOK_DIM) for i in range(1, 6)}  # 1 nearest the query's look, 5 farthest
    index.upsert([IndexPoint(p.id, p.vector, p.payload, look=looks[p.id], kind=kinds[p.id]) for p in catalog()])
    by_kind = LookQuery([unit(1, dim=LOOK_DIM)], 0.0, 1.0, 1.0, candidates=3, kinds=[unit(1, dim=KIND_DIM)])
    hits = index.search_batch([vec(0)], limit=3, look=by_kind)[0]
    assert ids(hits) == [5, 4, 3]  # weight 0: by the kind distance alone
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    # Weight 1: by the look, among the 3 nearest kinds only (1 and 2 have the nearest looks but are not candidates).
    assert ids(index.search_batch([vec(0)], limit=3, look=replace(by_kind, weight=1.0))[0]) == [3, 4, 5]
    dress = index.search_batch([vec(0)], limit=3, where=SearchFilter(categories=("dress",)), look=by_kind)[0]
    assert ids(dress) == [4, 2, 1]
    assert index.named_vectors([3], KIND)[3] == pytest.approx(kinds[3], abs=1e-6)
    both = index.vectors_named([3, 5, 99], [KIND, LOOK])  # one read; an unknown id is left out of each
    assert set(both) == {KIND, LOOK} and set(both[KIND]) == set(both[LOOK]) == {3, 5}
    assert both[KIND][5] == pytest.approx(kinds[5], abs=1e-6) and both[LOOK][3] == pytest.approx(looks[3], abs=1e-6)
    # The candidates alone, and the formula over candidates given by id (what the service's expansion reuses).
    assert index.look_candidates([vec(0)], look=by_kind, limit=3) == [[5, 4, 3]]
    given = index.search_batch([vec(0)], limit=3, look=replace(by_kind, weight=1.0, pools=[[1, 2, 5]]))[0]
    assert ids(given) == [1, 2, 5]  # by the look, among exactly these
    assert index.search_batch([vec(0)], limit=3, look=replace(by_kind, pools=[[]])) == [[]]


def test_a_collection_with_look_but_no_kind_vectors_ranks_the_look_by_the_1000d_candidates(tmp_path: Path) -> None:
    import qdrant_edge as qe

    config = qe.EdgeConfig(
        vectors={
            "": qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Euclid),
            LOOK: qe.EdgeVectorParams(size=LOOK_DIM, distance=qe.Distance.Euclid),
            COPY: qe.EdgeVectorParams(
                size=COPY_DIM,
                distance=qe.Distance.Cosine,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            ),
        }
    )
    qe.EdgeShard.create(str(tmp_path / "before-kinds"), config).close()
    index = EdgeIndex(tmp_path, "before-kinds")
    assert index.descriptors and not index.kinds
    points = catalog()
    index.upsert(
        [IndexPoint(p.id, p.vector, p.payload, look=unit(1, dim=LOOK_DIM), kind=unit(1, dim=KIND_DIM)) for p in points]
    )
    assert index.named_vectors([1], KIND) == {} and index.named_vectors([1], LOOK)[1][0] == pytest.approx(1.0)
    found = index.vectors_named([1], [KIND, LOOK])  # a name the collection lacks: empty, the others read
    assert found[KIND] == {} and found[LOOK][1][0] == pytest.approx(1.0)
    plain = LookQuery([unit(1, dim=LOOK_DIM)], 0.0, 1.0, 1.0, candidates=3)
    assert ids(index.search_batch([vec(0)], limit=3, look=plain)[0]) == [1, 2, 3]
    with pytest.raises(IndexUnavailable, match="reindex"):
        index.search_batch([vec(0)], limit=3, look=replace(plain, kinds=[unit(1, dim=KIND_DIM)]))
    index.close()


def test_copies_match_the_best_variant_above_the_similarity(index: VectorIndex) -> None:
    a, b, c = unit(1, 0, 0, dim=COPY_DIM), unit(0, 1, 0, dim=COPY_DIM), unit(0, 0, 1, dim=COPY_DIM)
    points = catalog()
    index.upsert(
        [
            IndexPoint(1, points[0].vector, points[0].payload, copy=[a, b]),
            IndexPoint(2, points[1].vector, points[1].payload, copy=[c, c]),
            IndexPoint(3, points[2].vector, points[2].payload),  # no copy descriptor: never a copy
        ]
    )
    hits = index.copies([b], limit=5, where=None, min_similarity=0.9)
    assert [(h.id, h.product_id) for h in hits] == [(1, 10)] and hits[0].distance == pytest.approx(0, abs=1e-5)
    assert ids(index.copies([unit(1, 1, dim=COPY_DIM), c], limit=5, where=None, min_similarity=0.6)) == [2, 1]
    assert index.copies([b], limit=5, where=SearchFilter(exclude_product_ids=(10,)), min_similarity=0.5) == []


def test_a_collection_from_before_the_named_vectors_still_answers_by_the_default_vector(tmp_path: Path) -> None:
    import qdrant_edge as qe

    legacy = qe.EdgeShard.create(
        str(tmp_path / "old"), qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Euclid))
    )
    legacy.close()
    index = EdgeIndex(tmp_path, "old")
    assert not index.descriptors
    index.upsert([IndexPoint(p.id, p.vector, p.payload, look=unit(1, dim=LOOK_DIM)) for p in catalog()])
    assert ids(search_one(index, vec(0), limit=2)) == [1, 2]
    assert index.vectors([1])[1][0] == pytest.approx(1.0)
    assert (
        index.named_vectors([1], LOOK) == {}
        and index.copies([vec(0)[:COPY_DIM]], limit=3, where=None, min_similarity=0) == []
    )
    look = LookQuery([unit(1, dim=LOOK_DIM)], weight=1.0, embedding_scale=1.0, look_scale=1.0, candidates=3)
    with pytest.raises(IndexUnavailable, match="reindex"):
        index.search_batch([vec(0)], limit=2, look=look)
    index.close()


def test_recommend_goes_towards_the_liked_and_away_from_the_unliked(index: VectorIndex) -> None:
    index.upsert(catalog())  # points at x = 1..5
    assert ids(index.steered(Steer([vec(0)]), limit=3)) == [1, 2, 3]
    towards = index.steered(Steer([vec(0.9), vec(5)]), limit=5)  # "more like these": near either
    assert set(ids(towards)[:2]) == {1, 5}
    away = index.steered(Steer([vec(2.2)], negatives=[vec(1)]), limit=5)
    assert ids(away)[:2] == [2, 3] and ids(away)[-1] == 1  # nearer the unliked one than the query: last
    assert [h.distance for h in away] == sorted(h.distance for h in away)
    dress = index.steered(Steer([vec(2.2)], negatives=[vec(1)]), limit=5, where=SearchFilter(categories=("dress",)))
    assert set(ids(dress)) == {1, 2, 4}


def test_diverse_spreads_the_answer_over_the_candidates(index: VectorIndex) -> None:
    points = [IndexPoint(i, vec(1 + i / 100), {"product_id": i}) for i in range(1, 6)]  # five near-identical
    points += [IndexPoint(10, vec(0, 1.5), {"product_id": 10}), IndexPoint(11, vec(-1.6), {"product_id": 11})]
    index.upsert(points)
    assert ids(index.steered(Steer([vec(0)]), limit=3)) == [1, 2, 3]
    varied = ids(index.steered(Steer([vec(0)], diverse=0.5, candidates=7), limit=3))
    assert varied[0] == 1 and set(varied[1:]) == {10, 11}


def test_a_shard_half_made_by_a_killed_process_is_dropped_once_untouched(tmp_path: Path) -> None:
    import os
    import time

    from backend.index import IndexUnavailable as Unavailable
    from backend.index.edge import BROKEN_SHARD_AGE_S, EdgeStore

    store = EdgeStore(tmp_path)
    broken = tmp_path / "products-half-made"
    broken.mkdir()
    (broken / "wal").mkdir()
    (broken / "edge_config.json").write_text("{")  # not a shard Qdrant Edge can open
    with pytest.raises(Unavailable):
        store._drop(broken.name, wait_s=0)  # just made: it may still be being created
    old = time.time() - BROKEN_SHARD_AGE_S - 5
    for path in [broken, *broken.rglob("*")]:
        os.utime(path, (old, old))
    store._drop(broken.name, wait_s=0)
    assert not broken.exists()


def test_the_lock_probe_sees_an_open_shard_without_opening_it(tmp_path: Path) -> None:
    """`shard_lock` takes the lock Qdrant Edge takes (a flock on the shard's `wal` folder): an upgrade of the
    library that locks elsewhere fails here, not as a drop that removes a shard in use."""
    from backend.index.edge import shard_lock

    index = EdgeIndex(tmp_path, "c")
    with shard_lock(tmp_path / "c") as free:
        assert free is False  # this process holds it, through another descriptor
    probe = "import sys; from backend.index.edge import EdgeIndex; EdgeIndex(sys.argv[1], 'c')"
    index.close()
    with shard_lock(tmp_path / "c") as free:
        assert free is True
        refused = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True)
        assert refused.returncode != 0 and "another process holds it" in refused.stderr  # while the probe holds it
    EdgeIndex(tmp_path, "c").close()  # and once it lets go, a process opens the shard again
