"""Qdrant Edge: Qdrant's own engine in-process, one shard directory per collection."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from backend.index.base import (
    ATTRS,
    COPY,
    COPY_DIM,
    KIND,
    KIND_DIM,
    LOOK,
    LOOK_DIM,
    PLAIN,
    PRODUCT_FIELDS,
    Hit,
    IndexBusy,
    IndexPoint,
    IndexUnavailable,
    LookQuery,
    SearchFilter,
    Steer,
    Storage,
    VectorIndex,
    VectorStore,
    as_floats,
    best_copy_hits,
    by_name,
    check_look,
    payload_indexes,
    point_vectors,
)
from ml.versions import EMBEDDING_DIM

SCHEMA_TYPES = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "integer": qe.PayloadSchemaType.Integer,
    "float": qe.PayloadSchemaType.Float,
}


PRODUCT_ONLY = qe.PayloadSelector.Include(["product_id"])
EXACT = qe.SearchParams(exact=True)  # the look's candidates, by their ids: a few dozen points to score


def edge_config(dim: int, storage: Storage | None = None) -> qe.EdgeConfig:
    """The default 1000-d Euclidean vector, the look and kind vectors, and the copy variants (cosine, best
    variant), kept as `storage` says (resolved: no `auto`)."""
    storage = storage or PLAIN
    memory = qe.Memory.Cold if storage.memory == "disk" else None  # the originals mapped from their files
    graph = qe.HnswIndexConfig(m=storage.hnsw_m, ef_construct=storage.hnsw_ef_construct, full_scan_threshold=10_000)
    int8 = qe.ScalarQuantizationConfig(qe.ScalarType.Int8, always_ram=True)
    # On disk, the kind vector's int8 copies are mapped too: it picks the look's candidates, a few pages a query.
    kind_int8 = (
        qe.ScalarQuantizationConfig(qe.ScalarType.Int8, memory=qe.Memory.Cold) if storage.memory == "disk" else int8
    )
    return qe.EdgeConfig(
        vectors={
            "": qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Euclid,
                memory=memory,
                quantization_config=int8 if storage.quantization == "int8" else None,
                hnsw_config=graph,
            ),
            # Only ever scored among given candidates (the look's formula, recommend inside a prefetch): no graph.
            LOOK: qe.EdgeVectorParams(
                size=LOOK_DIM,
                distance=qe.Distance.Euclid,
                memory=memory,
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000),
            ),
            # int8 with rescoring by the originals: the same recall@50, ten times faster (1,280 floats a point).
            KIND: qe.EdgeVectorParams(
                size=KIND_DIM,
                distance=qe.Distance.Euclid,
                memory=memory,
                quantization_config=kind_int8,
                hnsw_config=graph,
            ),
            COPY: qe.EdgeVectorParams(
                size=COPY_DIM,
                distance=qe.Distance.Cosine,
                memory=memory,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            ),
        }
    )


def look_formula(look: LookQuery) -> qe.Formula:
    """Qdrant orders a formula's scores high first: the negated blend of the two distances."""
    e = qe.Expression
    blend = e.Sum(
        [
            e.Mult([e.Constant((1 - look.weight) / look.embedding_scale), e.Variable("$score[0]")]),
            e.Mult([e.Constant(look.weight / look.look_scale), e.Variable("$score[1]")]),
        ]
    )
    return qe.Formula(e.Neg(blend))


def default_vector(vector: Any) -> list[float]:
    return list(vector[""] if isinstance(vector, dict) else vector)


def edge_filter(where: SearchFilter | None) -> qe.Filter | None:
    if where is None or where.empty:
        return None
    must: list[Any] = []
    if where.categories:
        must.append(qe.FieldCondition("category", match=qe.MatchAny(list(where.categories))))
    if where.brands:
        must.append(qe.FieldCondition("brand", match=qe.MatchAny(list(where.brands))))
    if where.price_min is not None or where.price_max is not None:
        must.append(qe.FieldCondition("price", range=qe.RangeFloat(gte=where.price_min, lte=where.price_max)))
    for key, values in where.attributes:
        must.append(qe.FieldCondition(f"{ATTRS}.{key}", match=qe.MatchAny(list(values))))
    must_not: list[Any] = []
    if where.exclude_product_ids:
        must_not.append(qe.FieldCondition("product_id", match=qe.MatchAny(list(where.exclude_product_ids))))
    return qe.Filter(must=must or None, must_not=must_not or None)


def _product(product_id: int) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("product_id", match=qe.MatchValue(product_id))])


class EdgeIndex:
    """A VectorIndex over one Qdrant Edge shard. The shard is locked to this process."""

    def __init__(
        self,
        path: Path,
        name: str,
        dim: int = EMBEDDING_DIM,
        hnsw_ef: int = 64,
        attribute_keys: Sequence[str] = (),
        storage: Storage | None = None,
    ) -> None:
        self.name = name
        storage = storage or PLAIN
        # The 1000-d searches: quantized (if the collection is) with its best hits scored again by the originals.
        rescored = qe.QuantizationSearchParams(rescore=True, oversampling=storage.oversampling)
        self._params = qe.SearchParams(hnsw_ef=hnsw_ef, quantization=rescored)
        self._kind_params = qe.SearchParams(hnsw_ef=hnsw_ef)
        self.path = Path(path) / name
        self._lock = threading.Lock()  # serialises writes; queries run concurrently
        try:
            if self.path.is_dir() and any(self.path.iterdir()):
                self._shard = qe.EdgeShard.load(str(self.path))
            else:
                self._shard = qe.EdgeShard.create(str(self.path), edge_config(dim, storage))
        except Exception as exc:  # the binding raises plain Exception
            if "WouldBlock" in str(exc):
                raise IndexBusy(
                    f"cannot open the Qdrant Edge shard at {self.path}: another process holds it (the embedded"
                    " store is locked to one process: stop the other one, or run the full stack with QDRANT_URL)"
                ) from exc
            raise IndexUnavailable(f"cannot open the Qdrant Edge shard at {self.path}: {exc}") from exc
        self._named = self._named_vectors()
        self._closed = False
        self._written = False  # writes since the last optimize (bulk loads optimize themselves)
        # Pages of a memory-mapped shard arrive on first touch: at 300k photos a cold query took
        # tens of milliseconds. Read the files once in the background so queries find them in memory.
        self.warm = threading.Event()
        threading.Thread(target=self._read_files_once, name="edge-warm-up", daemon=True).start()
        existing = set(self._shard.info().payload_schema)
        for field, kind in payload_indexes(attribute_keys).items():
            if field not in existing:
                self._shard.update(qe.UpdateOperation.create_field_index(field, SCHEMA_TYPES[kind]))

    def _has(self, name: str, dim: int) -> bool:
        try:
            self._shard.query(qe.QueryRequest(limit=1, query=qe.Query.Nearest([0.0] * dim, using=name)))
        except Exception:
            return False
        return True

    def _named_vectors(self) -> frozenset[str]:
        """The shard's named vectors: none in one created before they existed, look and copy in one created
        before kind vectors, all three since."""
        if not self._has(LOOK, LOOK_DIM):
            return frozenset()
        return frozenset({LOOK, COPY} | ({KIND} if self._has(KIND, KIND_DIM) else set()))

    @property
    def descriptors(self) -> bool:
        return LOOK in self._named

    @property
    def kinds(self) -> bool:
        return KIND in self._named

    def _read_files_once(self) -> None:
        try:
            for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
                with open(file, "rb") as fh:
                    while fh.read(8 << 20):
                        pass
        except OSError:
            pass  # a file replaced by the optimizer meanwhile: warming is best effort
        finally:
            self.warm.set()

    def _update(self, operation: qe.UpdateOperation) -> None:
        with self._lock:
            if self._closed:
                raise IndexUnavailable(f"the Qdrant Edge shard {self.name} was closed (a reindex replaced it)")
            try:
                self._shard.update(operation)
            except Exception as exc:
                raise IndexUnavailable(f"Qdrant Edge update failed: {exc}") from exc
            self._written = True

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        if points:
            self._update(
                qe.UpdateOperation.upsert_points(
                    [qe.Point(p.id, point_vectors(p, self._named), p.payload) for p in points]
                )
            )

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            self._update(qe.UpdateOperation.delete_points(list(ids)))

    def set_product_payload(self, product_id: int, payload: dict[str, Any]) -> None:
        self._update(qe.UpdateOperation.set_payload_by_filter(_product(product_id), payload))

    def look_candidates(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        look: LookQuery,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[list[int]]:
        check_look(self, look)
        condition = edge_filter(where)
        pools = []
        for n, vector in enumerate(vectors):
            request = qe.QueryRequest(
                limit=look.pool_size(limit),
                query=(
                    qe.Query.Nearest(as_floats(look.kinds[n]), using=KIND)
                    if look.kinds
                    else qe.Query.Nearest(as_floats(vector))
                ),
                filter=condition,
                score_threshold=None if look.kinds else max_distance,
                with_payload=False,
                params=self._kind_params if look.kinds else self._params,
            )
            pools.append([int(p.id) for p in self._query(request)])
        return pools

    def _query(self, request: qe.QueryRequest) -> list[Any]:
        try:
            return list(self._shard.query(request))
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant Edge query failed: {exc}") from exc

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
        look: LookQuery | None = None,
    ) -> list[list[Hit]]:
        if look is not None:
            return self._look_batch(vectors, look, limit=limit, where=where, max_distance=max_distance)
        condition = edge_filter(where)
        # One query per vector: measured on 300k points, Edge's query_batch took 15.8 ms for a
        # product's three photos where three single queries took 3.9 ms.
        results = []
        for vector in vectors:
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(as_floats(vector)),
                filter=condition,
                with_payload=PRODUCT_ONLY,  # the database holds the rest; fetching it doubles the cost
                score_threshold=max_distance,
                params=self._params,
            )
            results.append([Hit(int(p.id), float(p.score), int(p.payload["product_id"])) for p in self._query(request)])
        return results

    def _look_batch(
        self,
        vectors: Sequence[Sequence[float]],
        look: LookQuery,
        *,
        limit: int,
        where: SearchFilter | None,
        max_distance: float | None,
    ) -> list[list[Hit]]:
        """The formula over each query's candidates, by their ids: a prefetch that searched the candidates inside
        the formula's request would search them twice (measured: 3.5 ms against 1.6 ms at 20k points)."""
        check_look(self, look)
        pools = look.pools or self.look_candidates(
            vectors, look=look, limit=limit, where=where, max_distance=max_distance
        )
        results: list[list[Hit]] = []
        for n, vector in enumerate(vectors):
            if not pools[n]:
                results.append([])
                continue
            among = qe.Filter(must=[qe.HasIdCondition(set(pools[n]))])
            size = len(pools[n])
            by_pool = (
                qe.Query.Nearest(as_floats(look.kinds[n]), using=KIND)
                if look.kinds
                else qe.Query.Nearest(as_floats(vector))
            )
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[
                    qe.Prefetch(limit=size, query=by_pool, filter=among, params=EXACT),
                    qe.Prefetch(
                        limit=size,
                        query=qe.Query.Nearest(as_floats(look.vectors[n]), using=LOOK),
                        filter=among,
                        params=EXACT,
                    ),
                ],
                query=look_formula(look),
                with_payload=PRODUCT_ONLY,
            )
            results.append(
                [Hit(int(p.id), -float(p.score), int(p.payload["product_id"])) for p in self._query(request)]
            )
        return results

    def steered(self, steer: Steer, *, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        condition = edge_filter(where)
        recommend = len(steer.positives) > 1 or bool(steer.negatives)
        by_look = bool(steer.look_positives) and self.descriptors
        pool_size = max(steer.candidates, limit)
        ranking: Any = (
            qe.Query.RecommendBestScore(
                qe.RecommendQuery([as_floats(v) for v in steer.positives], [as_floats(v) for v in steer.negatives])
            )
            if recommend
            else qe.Query.Nearest(as_floats(steer.positives[0]))
        )
        stage: Any = None  # the ranked candidates so far, as a prefetch
        if by_look or steer.diverse > 0:
            stage = qe.Prefetch(limit=pool_size, query=ranking, filter=condition, params=self._params)
        if by_look:
            looks = qe.RecommendQuery(
                [as_floats(v) for v in steer.look_positives], [as_floats(v) for v in steer.look_negatives]
            )
            ranking = qe.Query.RecommendBestScore(looks, using=LOOK)
            if steer.diverse > 0:
                stage = qe.Prefetch(limit=pool_size, query=ranking, prefetches=[stage])
        if steer.diverse > 0:
            anchor = as_floats(steer.anchor if steer.anchor is not None else steer.positives[0])
            ranking = qe.Mmr(anchor, 1.0 - steer.diverse, pool_size)
        request = qe.QueryRequest(
            limit=limit,
            query=ranking,
            prefetches=[stage] if stage is not None else None,
            filter=condition if stage is None else None,
            with_payload=PRODUCT_ONLY,
            params=self._params if stage is None else None,
        )
        points = self._query(request)
        as_distance = (recommend or by_look) and steer.diverse == 0
        return [
            Hit(int(p.id), 1.0 - float(p.score) if as_distance else float(p.score), int(p.payload["product_id"]))
            for p in points
        ]

    def copies(
        self, queries: Sequence[Sequence[float]], *, limit: int, where: SearchFilter | None, min_similarity: float
    ) -> list[Hit]:
        if not self.descriptors:
            return []
        condition = edge_filter(where)
        scored: list[tuple[int, float, int]] = []
        for query in queries:
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest([as_floats(query)], using=COPY),
                filter=condition,
                with_payload=PRODUCT_ONLY,
                score_threshold=min_similarity,
            )
            points = self._query(request)
            scored += [(int(p.id), float(p.score), int(p.payload["product_id"])) for p in points]
        return best_copy_hits(scored, limit)

    def vectors(self, ids: Sequence[int]) -> dict[int, list[float]]:
        if not ids:
            return {}
        try:
            records = self._shard.retrieve(list(ids), False, [""] if self._named else True)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant Edge retrieve failed: {exc}") from exc
        return {int(r.id): default_vector(r.vector) for r in records if r.vector is not None}

    def named_vectors(self, ids: Sequence[int], name: str) -> dict[int, Any]:
        return self.vectors_named(ids, [name])[name]

    def vectors_named(self, ids: Sequence[int], names: Sequence[str]) -> dict[str, dict[int, Any]]:
        wanted = [name for name in names if name in self._named]
        records = []
        if ids and wanted:
            try:
                records = self._shard.retrieve(list(ids), False, wanted)
            except Exception as exc:
                raise IndexUnavailable(f"Qdrant Edge retrieve failed: {exc}") from exc
        # record.vector is converted from the engine's at each access: once here
        return by_name(names, ((record.id, record.vector) for record in records))

    def _scroll(self, with_payload: Any) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        offset = None
        try:
            while True:
                request = qe.ScrollRequest(offset=offset, limit=1000, with_payload=with_payload)
                records, offset = self._shard.scroll(request)
                found.update((int(r.id), dict(r.payload or {})) for r in records)
                if offset is None:
                    return found
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant Edge scroll failed: {exc}") from exc

    def ids(self) -> set[int]:
        return set(self._scroll(False))

    def sample_ids(self, n: int) -> list[int]:
        try:
            records, _ = self._shard.scroll(qe.ScrollRequest(limit=n, with_payload=False))
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant Edge scroll failed: {exc}") from exc
        return [int(r.id) for r in records]

    def payloads(self) -> dict[int, dict[str, Any]]:
        return self._scroll(qe.PayloadSelector.Include(PRODUCT_FIELDS))

    def count(self, *, exact: bool = True) -> int:
        try:
            return int(self._shard.count(qe.CountRequest(exact=exact)))
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant Edge count failed: {exc}") from exc

    @property
    def ready(self) -> bool:
        return self.warm.is_set()

    def optimize(self) -> None:
        """Merge segments and build HNSW: Edge does this only when asked (after bulk loads, by the sweep)."""
        with self._lock:
            if self._closed:
                raise IndexUnavailable(f"the Qdrant Edge shard {self.name} was closed")
            try:
                self._shard.optimize()
            except Exception as exc:
                raise IndexUnavailable(f"Qdrant Edge optimize failed: {exc}") from exc
            self._written = False

    def optimize_if_needed(self) -> bool:
        if not self._written:
            return False
        self.optimize()
        return True

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._shard.flush()
                self._shard.close()


BROKEN_SHARD_AGE_S = 20.0
LOCKED_FOLDER = "wal"  # what an open Edge shard flocks (tests/index/test_contract.py checks it still is)


@contextlib.contextmanager
def shard_lock(path: Path) -> Iterator[bool]:
    """Take the lock an open Edge shard holds (a flock on its `wal` folder), without opening the shard: yields
    False when a process holds it (this one included), True while this holds it. Opening a shard to find out
    held the GIL for its whole load (0.6 s at 3,000 points) and stalled every request of the serving process
    at each drop. FileNotFoundError: no such folder (a shard half made)."""
    fd = os.open(path / LOCKED_FOLDER, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # closing the descriptor lets go of the lock


def _whole(path: Path) -> bool:
    """Whether a shard folder was made whole: its config written (a process killed while it created the shard
    leaves it missing or cut short)."""
    try:
        json.loads((path / "edge_config.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def _remove_free_shard(path: Path, *, whole: bool) -> None:
    """Remove a shard nobody holds; one not made whole only once untouched for a while, since a process may
    still be creating it."""
    if not whole and time.time() - _last_touched(path) <= BROKEN_SHARD_AGE_S:
        raise IndexUnavailable(f"cannot drop {path} yet: it is being created")
    shutil.rmtree(path)


def _last_touched(path: Path) -> float:
    """The newest modification time of a folder and everything in it."""
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])


class EdgeStore(VectorStore):
    """Qdrant Edge shards under one folder, one per collection; each locked to the process that opened it."""

    holds_collections = True

    def __init__(
        self, root: Path, *, hnsw_ef: int = 64, attribute_keys: Sequence[str] = (), storage: Storage | None = None
    ) -> None:
        super().__init__(storage)
        self.root = Path(root)
        self.location = str(self.root)
        self.hnsw_ef = hnsw_ef
        self.attribute_keys = tuple(attribute_keys)

    def _connect(self, name: str, storage: Storage) -> VectorIndex:
        return EdgeIndex(self.root, name, hnsw_ef=self.hnsw_ef, attribute_keys=self.attribute_keys, storage=storage)

    def list(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def _drop(self, name: str, wait_s: float) -> None:
        path = self.root / name
        if not path.is_dir():
            return
        deadline = time.monotonic() + wait_s
        while True:
            try:
                with shard_lock(path) as free:
                    if free:
                        _remove_free_shard(path, whole=_whole(path))
                        return
            except FileNotFoundError:  # no wal folder: half made by a process killed while it created it
                if path.is_dir():  # (or dropped meanwhile by another process)
                    _remove_free_shard(path, whole=False)
                return
            if time.monotonic() >= deadline:
                raise IndexBusy(f"collection {name} is still open in another process")
            time.sleep(0.5)
