"""The vector index contract: what the service needs from Qdrant, whichever way it runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

log = logging.getLogger("backend.index")

# Named vectors beside the default (unnamed) 1000-d one, in every collection created since they exist
# (ml.descriptors says what they are; the sizes are repeated here so that the web app needs no torch).
LOOK = "look"
LOOK_DIM = 1056
COPY = "copy"
COPY_DIM = 384
KIND = "kind"
KIND_DIM = 1280
PRODUCT_FIELDS = ["product_id", "category", "brand", "price", "attrs"]
# The declared filter attributes live under this payload key: {"attrs": {"colour": ["red"]}}.
ATTRS = "attrs"
# product_id is an integer payload with an integer index (exact match); category and brand exact keywords,
# price a float range.
PAYLOAD_INDEXES = {
    "category": "keyword",
    "brand": "keyword",
    "product_id": "integer",
    "price": "float",
}
# A collection replaced by a reindex stays readable this long after the switch, so that queries that
# read its name just before the switch finish on it: an Edge shard stays open, a server collection stays.
RELEASE_GRACE_S = 5.0


def by_name(names: Sequence[str], records: Iterable[tuple[Any, Any]]) -> dict[str, dict[int, Any]]:
    """`vectors_named`'s answer from (id, vectors by name) of the points read: every name a key."""
    found: dict[str, dict[int, Any]] = {name: {} for name in names}
    for point_id, vectors in records:
        if isinstance(vectors, dict):
            for name in names:
                if name in vectors:
                    found[name][int(point_id)] = vectors[name]
    return found


def as_floats(vector: Sequence[float]) -> list[float]:
    """A plain list of floats; numpy arrays convert in C (300k x 1000 floats add up). A list passes as it is (the
    engines read a Python int as a float too): copied item by item, a 1280-d kind vector cost 40 us a query."""
    if type(vector) is list and (not vector or type(vector[0]) is float):
        return vector
    tolist = getattr(vector, "tolist", None)
    return tolist() if tolist is not None else [float(x) for x in vector]


class IndexUnavailable(RuntimeError):
    """The vector store could not be reached or refused the operation; worth retrying later."""


class IndexBusy(IndexUnavailable):
    """Another process holds this Qdrant Edge shard (it is locked to one process)."""


# From this many photos, `auto` storage keeps int8 copies of the searched vectors in RAM and the originals on
# disk (the README's capacity table measured where float32 in RAM stops fitting a small machine).
COMPACT_FROM_PHOTOS = 200_000


@dataclass(frozen=True)
class Storage:
    """How a new collection keeps its vectors (QUANTIZATION, VECTOR_MEMORY, HNSW_M, HNSW_EF_CONSTRUCT) and, on
    the server, how it is spread (QDRANT_SHARDS, QDRANT_REPLICAS, QDRANT_WRITE_CONSISTENCY). A collection keeps
    what it was created with."""

    quantization: str = "auto"  # auto, none, int8: of the 1000-d vector (the kind vector is int8 always)
    memory: str = "auto"  # auto, ram, disk: the original vectors
    oversampling: float = 2.0  # quantized search: this many times the hits scored again by the originals
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    shards: int = 1
    replicas: int = 1
    write_consistency: int = 1

    def resolved(self, photos: int | None) -> Storage:
        """`auto` decided for a collection built for `photos` photos (None: unknown, a new install's)."""
        big = photos is not None and photos >= COMPACT_FROM_PHOTOS  # read here: a test lowers it
        quantization = ("int8" if big else "none") if self.quantization == "auto" else self.quantization
        memory = ("disk" if big else "ram") if self.memory == "auto" else self.memory
        return replace(self, quantization=quantization, memory=memory)


# A collection's storage where none is given (an index opened outside a store, as the tests do): as before the
# settings existed.
PLAIN = Storage(quantization="none", memory="ram")


@dataclass(frozen=True)
class IndexPoint:
    id: int
    vector: Sequence[float]
    payload: dict[str, Any]
    look: Sequence[float] | None = None
    copy: Sequence[Sequence[float]] | None = None  # a few variants, compared by the best one (MaxSim)
    kind: Sequence[float] | None = None


def point_vectors(point: IndexPoint, named: frozenset[str]) -> Any:
    """What a point sends to the store: the 1000-d vector alone in a collection from before the named vectors,
    else the default ("") and whichever of the collection's named vectors the point has."""
    if not named:
        return as_floats(point.vector)
    vectors: dict[str, Any] = {"": as_floats(point.vector)}
    if point.look is not None and LOOK in named:
        vectors[LOOK] = as_floats(point.look)
    if point.copy is not None and COPY in named:
        vectors[COPY] = [as_floats(v) for v in point.copy]
    if point.kind is not None and KIND in named:
        vectors[KIND] = as_floats(point.kind)
    return vectors


def best_copy_hits(scored: Sequence[tuple[int, float, int]], limit: int) -> list[Hit]:
    """(point id, cosine similarity, product id) from one or more copy searches -> each point once at its best,
    as Hits with distance 1 - similarity, best first."""
    best: dict[int, Hit] = {}
    for point_id, similarity, product_id in scored:
        hit = Hit(point_id, max(0.0, 1.0 - similarity), product_id)
        if point_id not in best or hit.distance < best[point_id].distance:
            best[point_id] = hit
    return sorted(best.values(), key=lambda h: (h.distance, h.id))[:limit]


@dataclass(frozen=True)
class LookQuery:
    """Rank by the look too: among the `candidates` nearest points (under the filter) by the kind vector, or by
    the 1000-d vector where `kinds` is empty (a collection from before kind vectors), by
    (1 - weight) * that distance / embedding_scale + weight * look distance / look_scale, in the index.

    Two steps: the candidates (`look_candidates`: one HNSW search), then the formula over exactly those points.
    `pools`, where given, are the candidates already found, one list of point ids per query vector."""

    vectors: Sequence[Sequence[float]]  # one look vector per query vector
    weight: float
    embedding_scale: float
    look_scale: float
    candidates: int
    kinds: Sequence[Sequence[float]] = ()  # one kind vector per query vector, or none
    pools: Sequence[Sequence[int]] = ()

    def pool_size(self, limit: int) -> int:
        return max(self.candidates, limit)


@dataclass(frozen=True)
class Hit:
    id: int
    distance: float
    product_id: int


@dataclass(frozen=True)
class SearchFilter:
    """Conditions on the payload: OR within categories and within brands, AND across fields."""

    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    exclude_product_ids: tuple[int, ...] = field(default=())
    # (key, values): OR within a key's values, AND across keys; values folded as `attribute_term` folds them.
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.categories or self.brands or self.exclude_product_ids or self.attributes) and (
            self.price_min is None and self.price_max is None
        )


@dataclass(frozen=True)
class Steer:
    """Ranking the user steers: "more like these, less like those" (Qdrant's recommend, best score), and
    variety (Qdrant's MMR over the `candidates` best, relevance to `anchor`)."""

    positives: Sequence[Sequence[float]]
    negatives: Sequence[Sequence[float]] = ()
    diverse: float = 0.0  # 0: by relevance alone; 1: as varied as the candidates allow
    anchor: Sequence[float] | None = None  # what relevance means for MMR (default: the first positive)
    candidates: int = 100
    # With these, the `candidates` best by the 1000-d recommend are ranked by a recommend on their look vectors:
    # "more like this" then means its look (colour, pattern) among items of its kind.
    look_positives: Sequence[Sequence[float]] = ()
    look_negatives: Sequence[Sequence[float]] = ()


def check_look(index: VectorIndex, look: LookQuery) -> None:
    """IndexUnavailable (saying to reindex) when the collection lacks the vectors `look` ranks by."""
    if not index.descriptors:
        raise IndexUnavailable(f"collection {index.name} has no look vectors (built before them): reindex it")
    if look.kinds and not index.kinds:
        raise IndexUnavailable(f"collection {index.name} has no kind vectors (built before them): reindex it")


def payload_indexes(attribute_keys: Sequence[str]) -> dict[str, str]:
    """The payload indexes of a collection: the product fields, and a keyword index per declared attribute."""
    return PAYLOAD_INDEXES | {f"{ATTRS}.{key}": "keyword" for key in attribute_keys}


class VectorIndex(Protocol):
    """One collection of 1000-d Euclidean points keyed by image id."""

    name: str

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        """Insert or replace points; returns once they are searchable."""

    def delete(self, ids: Sequence[int]) -> None:
        """Remove points by image id; unknown ids are ignored."""

    def set_product_payload(self, product_id: int, payload: dict[str, Any]) -> None:
        """Update payload fields on every point of a product."""

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
        look: LookQuery | None = None,
    ) -> list[list[Hit]]:
        """For each vector, the nearest points in ascending distance (`look`: by the blended score among its
        candidates instead, `look.pools` or else `look_candidates`; `max_distance` bounds the 1000-d distance, of
        the candidates where they are picked by it)."""

    def steered(self, steer: Steer, *, limit: int, where: SearchFilter | None = None) -> list[Hit]:
        """The best points for `steer`, best first: by recommend (distance 1 - score) when there are negatives or
        several positives, else by the 1000-d distance; with `diverse`, in MMR's order (not by distance)."""

    def copies(
        self, queries: Sequence[Sequence[float]], *, limit: int, where: SearchFilter | None, min_similarity: float
    ) -> list[Hit]:
        """Points whose copy descriptor is at least `min_similarity` (cosine, best variant) to any query variant;
        Hit.distance is 1 - similarity, best first, each point once."""

    def look_candidates(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        look: LookQuery,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[list[int]]:
        """Per query vector, the ids of the look's candidates: the `look.pool_size(limit)` nearest points under the
        filter by the kind vector (by the 1000-d vector, within `max_distance`, where `look.kinds` is empty)."""

    def vectors(self, ids: Sequence[int]) -> dict[int, list[float]]:
        """Stored vectors by image id; missing ids are left out."""

    def named_vectors(self, ids: Sequence[int], name: str) -> dict[int, Any]:
        """A named vector (LOOK, KIND, COPY) of each point that has it."""

    def vectors_named(self, ids: Sequence[int], names: Sequence[str]) -> dict[str, dict[int, Any]]:
        """`named_vectors` of several names in one read: by name, the points that have it (every name a key)."""

    @property
    def descriptors(self) -> bool:
        """Whether the collection has the look and copy vectors (created since they exist)."""

    @property
    def kinds(self) -> bool:
        """Whether the collection has the kind vectors too (created since they exist)."""

    def ids(self) -> set[int]:
        """Every point id in the collection."""

    def sample_ids(self, n: int) -> list[int]:
        """Up to n point ids (the first page of a scroll: cheap, not random)."""

    def payloads(self) -> dict[int, dict[str, Any]]:
        """Every point's product fields (product_id, category, brand, price, attrs), by point id."""

    def count(self, *, exact: bool = True) -> int:
        """Number of points; `exact=False`: the engine's own tally, which needs no pass over the points (an exact
        count held the GIL 5.6 ms at 100,000 points on Edge)."""

    def optimize(self) -> None:
        """Build the search index (HNSW) for points added since; a no-op where the store does it itself."""

    def optimize_if_needed(self) -> bool:
        """`optimize` if points were written since the last one; whether it ran."""

    @property
    def ready(self) -> bool:
        """Whether the store's data is in memory (Edge warms its files at open; a server always answers)."""

    def close(self) -> None:
        """Release files or connections."""


class VectorStore:
    """One store (Edge under a folder, or one server) and this process's open collections in it.

    A subclass per backend says how to open, list, drop and alias collections; this class keeps the
    handles: each collection is opened once per process, and one a reindex replaced is let go after
    RELEASE_GRACE_S where the store holds it (an Edge shard is locked to the process that opened it).
    """

    location: str
    # Whether a collection another process is building can be opened here too (the server), so that
    # deletes and payload changes reach it; an Edge shard being built is locked by its builder.
    builds_visible: bool = False
    # Whether this process holds what it opened (Edge) and must let replaced collections go.
    holds_collections: bool = False

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or Storage()
        self._open: dict[str, VectorIndex] = {}
        # Replaced collections still open for the grace; then closed for good in this process.
        self._retiring: dict[str, VectorIndex] = {}
        self._released: set[str] = set()
        # Collections a reindex of this process is building: never let go by `release_others`, which a query
        # or the sweep calls with the active collection while the build runs beside it.
        self._building: set[str] = set()
        self._lock = threading.Lock()

    # What each backend does.
    def _connect(self, name: str, storage: Storage) -> VectorIndex:
        """Open collection `name`, created with `storage` if it is new."""
        raise NotImplementedError

    def _drop(self, name: str, wait_s: float) -> None:
        raise NotImplementedError

    def list(self) -> list[str]:
        """Collections that exist in the store."""
        raise NotImplementedError

    def point_alias(self, alias: str, name: str) -> None:
        """Point the alias `alias` at collection `name` in one atomic request, where the store has aliases."""

    def _close_connection(self) -> None:
        """Release what the store itself holds (a client) once every collection is closed."""

    # Shared by both.
    def open(self, name: str, *, photos: int | None = None) -> VectorIndex:
        """The process-wide index of collection `name`, opened (created if new, for `photos` photos: the storage
        `auto` chooses) once."""
        with self._lock:
            index = self._open.get(name) or self._retiring.get(name)  # retiring: read just before a switch
            if index is None:
                if name in self._released:
                    raise IndexUnavailable(f"collection {name} was replaced by a reindex; ask again")
                index = self._connect(name, self.storage.resolved(photos))
                self._open[name] = index
            return index

    def is_open(self, name: str) -> bool:
        """Whether this process holds collection `name` open (or in its grace after a switch)."""
        with self._lock:
            return name in self._open or name in self._retiring

    def open_for_build(self, name: str, *, photos: int | None = None) -> VectorIndex:
        """Open (create, for `photos` photos) a collection a reindex of this process builds: kept open, and never
        let go by `release_others`, until `close_collection` or until it is the active one a query asks for."""
        with self._lock:
            self._building.add(name)
        try:
            return self.open(name, photos=photos)
        except BaseException:
            with self._lock:
                self._building.discard(name)
            raise

    def close_collection(self, name: str) -> None:
        """Close this process's handle on a collection (Edge: frees the shard for another process)."""
        with self._lock:
            self._building.discard(name)
            index = self._open.pop(name, None) or self._retiring.pop(name, None)
        if index is not None:
            index.close()

    def drop(self, name: str, *, wait_s: float = 0.0) -> None:
        """Delete a collection; IndexBusy when another process still holds it after `wait_s`."""
        self.close_collection(name)
        self._drop(name, wait_s)

    def drop_replaced(self, name: str, *, wait_s: float) -> None:
        """Drop a collection a switch just replaced, once queries that read its name before the switch are done.

        Where processes hold their collections (Edge) they let it go after the grace and the drop waits for
        that; on the server, and for this process's own handle, the grace is waited here."""
        with self._lock:
            held_here = name in self._open or name in self._retiring  # the serving process's own reindex
        if held_here or not self.holds_collections:
            time.sleep(min(RELEASE_GRACE_S, wait_s))
        self.drop(name, wait_s=wait_s)

    def release_others(self, keep: str, also: Collection[str] = ()) -> None:
        """Let go of this process's collections other than `keep` and `also` (the other live ones: a running
        experiment's) after the grace (a reindex or the end of an experiment replaced them)."""
        if not self.holds_collections:
            return
        kept = {keep, *also}
        with self._lock:
            if keep in self._retiring or keep in self._released:
                return  # `keep` is itself the replaced one, read by a late request: the newer ones stay
            # A build of this process that a query now reads as live: from here an ordinary open collection
            # (a late request that read the previous one before the switch finds that one retiring).
            self._building.difference_update(kept)
            stale = [name for name in self._open if name not in kept and name not in self._building]
            for name in stale:
                self._retiring[name] = self._open.pop(name)
        for name in stale:
            log.info("closing the replaced collection %s in %.0f s", name, RELEASE_GRACE_S)
            timer = threading.Timer(RELEASE_GRACE_S, self._retire, args=(name,))
            timer.daemon = True
            timer.start()

    def _retire(self, name: str) -> None:
        with self._lock:
            index = self._retiring.pop(name, None)
            self._released.add(name)
        if index is not None:
            index.close()

    def close(self) -> None:
        with self._lock:
            handles = [*self._open.values(), *self._retiring.values()]
            self._open.clear()
            self._retiring.clear()
        for index in handles:
            index.close()
        self._close_connection()
