"""Qdrant server through qdrant-client (also its in-process `:memory:` mode, for tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

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
    "keyword": models.PayloadSchemaType.KEYWORD,
    "integer": models.PayloadSchemaType.INTEGER,
    "float": models.PayloadSchemaType.FLOAT,
}
TRANSIENT = (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError)


def server_filter(where: SearchFilter | None) -> models.Filter | None:
    if where is None or where.empty:
        return None
    must: list[Any] = []
    if where.categories:
        must.append(models.FieldCondition(key="category", match=models.MatchAny(any=list(where.categories))))
    if where.brands:
        must.append(models.FieldCondition(key="brand", match=models.MatchAny(any=list(where.brands))))
    if where.price_min is not None or where.price_max is not None:
        must.append(models.FieldCondition(key="price", range=models.Range(gte=where.price_min, lte=where.price_max)))
    for key, values in where.attributes:
        must.append(models.FieldCondition(key=f"{ATTRS}.{key}", match=models.MatchAny(any=list(values))))
    must_not: list[Any] = []
    if where.exclude_product_ids:
        must_not.append(
            models.FieldCondition(key="product_id", match=models.MatchAny(any=list(where.exclude_product_ids)))
        )
    return models.Filter(must=must or None, must_not=must_not or None)


def vectors_config(dim: int, storage: Storage | None = None) -> dict[str, models.VectorParams]:
    """The default 1000-d Euclidean vector, the look and kind vectors, and the copy variants (cosine, best
    variant), kept as `storage` says (resolved: no `auto`)."""
    storage = storage or PLAIN
    on_disk = storage.memory == "disk"  # the originals mapped from their files
    graph = models.HnswConfigDiff(m=storage.hnsw_m, ef_construct=storage.hnsw_ef_construct)
    int8 = models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
    )
    # On disk, the kind vector's int8 copies are mapped too: it picks the look's candidates, a few pages a query.
    kind_int8 = models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=not on_disk)
    )
    return {
        "": models.VectorParams(
            size=dim,
            distance=models.Distance.EUCLID,
            on_disk=on_disk,
            quantization_config=int8 if storage.quantization == "int8" else None,
            hnsw_config=graph,
        ),
        # Only ever scored among given candidates (the look's formula, recommend inside a prefetch): no graph.
        LOOK: models.VectorParams(
            size=LOOK_DIM, distance=models.Distance.EUCLID, on_disk=on_disk, hnsw_config=models.HnswConfigDiff(m=0)
        ),
        KIND: models.VectorParams(  # int8 with rescoring by the originals, as on Edge
            size=KIND_DIM,
            distance=models.Distance.EUCLID,
            on_disk=on_disk,
            quantization_config=kind_int8,
            hnsw_config=graph,
        ),
        COPY: models.VectorParams(
            size=COPY_DIM,
            distance=models.Distance.COSINE,
            on_disk=on_disk,
            multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
        ),
    }


EXACT = models.SearchParams(exact=True)  # the look's candidates, by their ids: a few dozen points to score


def look_formula(look: LookQuery) -> models.FormulaQuery:
    """Qdrant orders a formula's scores high first: the negated blend of the two distances."""
    blend = models.SumExpression(
        sum=[
            models.MultExpression(mult=[(1 - look.weight) / look.embedding_scale, "$score[0]"]),
            models.MultExpression(mult=[look.weight / look.look_scale, "$score[1]"]),
        ]
    )
    return models.FormulaQuery(formula=models.NegExpression(neg=blend))


def _product(product_id: int) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key="product_id", match=models.MatchValue(value=product_id))])


class ServerIndex:
    """A VectorIndex over one collection of a Qdrant server."""

    def __init__(
        self,
        client: QdrantClient,
        name: str,
        dim: int = EMBEDDING_DIM,
        hnsw_ef: int = 64,
        attribute_keys: Sequence[str] = (),
        storage: Storage | None = None,
    ) -> None:
        self.client = client
        self.name = name
        storage = storage or PLAIN
        # The 1000-d searches: quantized (if the collection is) with its best hits scored again by the originals.
        rescored = models.QuantizationSearchParams(rescore=True, oversampling=storage.oversampling)
        self._params = models.SearchParams(hnsw_ef=hnsw_ef, quantization=rescored)
        self._kind_params = models.SearchParams(hnsw_ef=hnsw_ef)
        try:
            if not client.collection_exists(name):
                client.create_collection(
                    name,
                    vectors_config=vectors_config(dim, storage),
                    shard_number=storage.shards,
                    replication_factor=storage.replicas,
                    write_consistency_factor=storage.write_consistency,
                )
            info = client.get_collection(name)
            configured = info.config.params.vectors
            # None in a collection created before the named vectors, look and copy in one created before kind.
            self._named = frozenset(configured) - {""} if isinstance(configured, dict) else frozenset()
            existing = set(info.payload_schema)
            for field, kind in payload_indexes(attribute_keys).items():
                if field not in existing:
                    client.create_payload_index(name, field, SCHEMA_TYPES[kind], wait=True)
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant server unavailable: {exc}") from exc

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        structs = [models.PointStruct(id=p.id, vector=point_vectors(p, self._named), payload=p.payload) for p in points]
        try:
            self.client.upsert(self.name, structs, wait=True)
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant upsert failed: {exc}") from exc

    def delete(self, ids: Sequence[int]) -> None:
        if ids:
            try:
                self.client.delete(self.name, models.PointIdsList(points=list(ids)), wait=True)
            except TRANSIENT as exc:
                raise IndexUnavailable(f"Qdrant delete failed: {exc}") from exc

    def set_product_payload(self, product_id: int, payload: dict[str, Any]) -> None:
        try:
            self.client.set_payload(self.name, payload, points=_product(product_id), wait=True)
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant set_payload failed: {exc}") from exc

    def _batch(self, requests: list[models.QueryRequest]) -> list[Any]:
        if not requests:
            return []
        try:
            return [response.points for response in self.client.query_batch_points(self.name, requests)]
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant query failed: {exc}") from exc

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
        condition = server_filter(where)
        requests = [
            models.QueryRequest(
                query=as_floats(look.kinds[n] if look.kinds else vector),
                using=KIND if look.kinds else None,
                filter=condition,
                limit=look.pool_size(limit),
                score_threshold=None if look.kinds else max_distance,
                with_payload=False,
                params=self._kind_params if look.kinds else self._params,
            )
            for n, vector in enumerate(vectors)
        ]
        return [[int(p.id) for p in points] for points in self._batch(requests)]

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
        look: LookQuery | None = None,
    ) -> list[list[Hit]]:
        if not vectors:
            return []
        if look is None:
            condition = server_filter(where)
            requests = [
                models.QueryRequest(
                    query=as_floats(vector),
                    filter=condition,
                    limit=limit,
                    with_payload=["product_id"],
                    score_threshold=max_distance,
                    params=self._params,
                )
                for vector in vectors
            ]
            return [
                [Hit(int(p.id), float(p.score), int((p.payload or {})["product_id"])) for p in points]
                for points in self._batch(requests)
            ]
        # The formula over each query's candidates by their ids, as on Edge (a prefetch searching them inside the
        # formula's request would search them twice).
        check_look(self, look)
        pools = look.pools or self.look_candidates(
            vectors, look=look, limit=limit, where=where, max_distance=max_distance
        )
        requests, asked = [], []
        for n, vector in enumerate(vectors):
            if not pools[n]:
                continue
            among = models.Filter(must=[models.HasIdCondition(has_id=list(pools[n]))])
            size = len(pools[n])
            requests.append(
                models.QueryRequest(
                    prefetch=[
                        models.Prefetch(
                            query=as_floats(look.kinds[n] if look.kinds else vector),
                            using=KIND if look.kinds else None,
                            filter=among,
                            limit=size,
                            params=EXACT,
                        ),
                        models.Prefetch(
                            query=as_floats(look.vectors[n]), using=LOOK, filter=among, limit=size, params=EXACT
                        ),
                    ],
                    query=look_formula(look),
                    limit=limit,
                    with_payload=["product_id"],
                )
            )
            asked.append(n)
        answers = dict(zip(asked, self._batch(requests), strict=True))
        return [
            [Hit(int(p.id), -float(p.score), int((p.payload or {})["product_id"])) for p in answers.get(n, [])]
            for n in range(len(vectors))
        ]

    def steered(self, steer: Steer, *, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        condition = server_filter(where)
        recommend = len(steer.positives) > 1 or bool(steer.negatives)
        by_look = bool(steer.look_positives) and self.descriptors
        pool_size = max(steer.candidates, limit)

        def recommend_query(positives: Any, negatives: Any) -> models.RecommendQuery:
            return models.RecommendQuery(
                recommend=models.RecommendInput(
                    positive=[as_floats(v) for v in positives],
                    negative=[as_floats(v) for v in negatives],
                    strategy=models.RecommendStrategy.BEST_SCORE,
                )
            )

        ranking: Any = recommend_query(steer.positives, steer.negatives) if recommend else as_floats(steer.positives[0])
        using: str | None = None
        stage: models.Prefetch | None = None
        if by_look or steer.diverse > 0:
            stage = models.Prefetch(query=ranking, filter=condition, limit=pool_size, params=self._params)
        if by_look:
            ranking, using = recommend_query(steer.look_positives, steer.look_negatives), LOOK
            if steer.diverse > 0 and stage is not None:
                stage = models.Prefetch(query=ranking, using=LOOK, limit=pool_size, prefetch=[stage])
                using = None
        if steer.diverse > 0:
            anchor = as_floats(steer.anchor if steer.anchor is not None else steer.positives[0])
            ranking = models.NearestQuery(
                nearest=anchor, mmr=models.Mmr(diversity=steer.diverse, candidates_limit=pool_size)
            )
        try:
            response = self.client.query_points(
                self.name,
                query=ranking,
                using=using,
                prefetch=[stage] if stage is not None else None,
                query_filter=condition if stage is None else None,
                limit=limit,
                with_payload=["product_id"],
                search_params=self._params if stage is None else None,
            )
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant query failed: {exc}") from exc
        as_distance = (recommend or by_look) and steer.diverse == 0
        return [
            Hit(
                int(p.id),
                1.0 - float(p.score) if as_distance else float(p.score),
                int((p.payload or {})["product_id"]),
            )
            for p in response.points
        ]

    def copies(
        self, queries: Sequence[Sequence[float]], *, limit: int, where: SearchFilter | None, min_similarity: float
    ) -> list[Hit]:
        if not self.descriptors or not queries:
            return []
        condition = server_filter(where)
        requests = [
            models.QueryRequest(
                query=[as_floats(query)],
                using=COPY,
                filter=condition,
                limit=limit,
                with_payload=["product_id"],
                score_threshold=min_similarity,
            )
            for query in queries
        ]
        scored = [
            (int(p.id), float(p.score), int((p.payload or {})["product_id"]))
            for points in self._batch(requests)
            for p in points
        ]
        return best_copy_hits(scored, limit)

    @property
    def descriptors(self) -> bool:
        return LOOK in self._named

    @property
    def kinds(self) -> bool:
        return KIND in self._named

    def vectors(self, ids: Sequence[int]) -> dict[int, list[float]]:
        if not ids:
            return {}
        try:
            records = self.client.retrieve(
                self.name, list(ids), with_payload=False, with_vectors=[""] if self._named else True
            )
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant retrieve failed: {exc}") from exc
        found: dict[int, list[float]] = {}
        for r in records:
            vector = r.vector.get("") if isinstance(r.vector, dict) else r.vector
            if isinstance(vector, list):
                found[int(r.id)] = vector  # type: ignore[assignment]
        return found

    def named_vectors(self, ids: Sequence[int], name: str) -> dict[int, Any]:
        return self.vectors_named(ids, [name])[name]

    def vectors_named(self, ids: Sequence[int], names: Sequence[str]) -> dict[str, dict[int, Any]]:
        wanted = [name for name in names if name in self._named]
        records: list[models.Record] = []
        if ids and wanted:
            try:
                records = self.client.retrieve(self.name, list(ids), with_payload=False, with_vectors=wanted)
            except TRANSIENT as exc:
                raise IndexUnavailable(f"Qdrant retrieve failed: {exc}") from exc
        return by_name(names, ((r.id, r.vector) for r in records))

    def _scroll(self, with_payload: Any) -> dict[int, dict[str, Any]]:
        found: dict[int, dict[str, Any]] = {}
        offset = None
        try:
            while True:
                records, offset = self.client.scroll(self.name, limit=1000, offset=offset, with_payload=with_payload)
                found.update((int(r.id), dict(r.payload or {})) for r in records)
                if offset is None:
                    return found
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant scroll failed: {exc}") from exc

    def ids(self) -> set[int]:
        return set(self._scroll(False))

    def sample_ids(self, n: int) -> list[int]:
        try:
            records, _ = self.client.scroll(self.name, limit=n, with_payload=False)
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant scroll failed: {exc}") from exc
        return [int(r.id) for r in records]

    def payloads(self) -> dict[int, dict[str, Any]]:
        return self._scroll(PRODUCT_FIELDS)

    def count(self, *, exact: bool = True) -> int:
        try:
            return int(self.client.count(self.name, exact=exact).count)
        except TRANSIENT as exc:
            raise IndexUnavailable(f"Qdrant count failed: {exc}") from exc

    def optimize(self) -> None:
        """The server builds its index in the background."""

    def optimize_if_needed(self) -> bool:
        return False

    @property
    def ready(self) -> bool:
        return True

    def close(self) -> None:
        """The client is shared by every collection of the store; the store closes it."""


class ServerStore(VectorStore):
    """Collections of one Qdrant server (or qdrant-client's in-process `:memory:` mode, for tests)."""

    builds_visible = True

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        hnsw_ef: int = 64,
        attribute_keys: Sequence[str] = (),
        storage: Storage | None = None,
    ) -> None:
        super().__init__(storage)
        self.location = url
        self.hnsw_ef = hnsw_ef
        self.attribute_keys = tuple(attribute_keys)
        if url == ":memory:":
            self.client = QdrantClient(location=":memory:")
        else:
            self.client = QdrantClient(url=url, api_key=api_key, timeout=10)

    def _connect(self, name: str, storage: Storage) -> VectorIndex:
        return ServerIndex(self.client, name, hnsw_ef=self.hnsw_ef, attribute_keys=self.attribute_keys, storage=storage)

    def list(self) -> list[str]:
        try:
            return sorted(c.name for c in self.client.get_collections().collections)
        except Exception as exc:
            raise IndexUnavailable(f"Qdrant server unavailable: {exc}") from exc

    def _drop(self, name: str, wait_s: float) -> None:
        try:
            self.client.delete_collection(name)
        except Exception as exc:
            raise IndexUnavailable(f"cannot drop collection {name}: {exc}") from exc

    def point_alias(self, alias: str, name: str) -> None:
        actions: list[models.AliasOperations] = []
        try:
            if any(a.alias_name == alias for a in self.client.get_aliases().aliases):
                actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
            actions.append(
                models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
            )
            self.client.update_collection_aliases(change_aliases_operations=actions)
        except Exception as exc:
            raise IndexUnavailable(f"cannot point alias {alias} at {name}: {exc}") from exc

    def _close_connection(self) -> None:
        self.client.close()
