"""The vector index contract: what the service needs from Qdrant, whichever way it runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

EMBEDDING_DIM = 1000
PRODUCT_FIELDS = ["product_id", "category", "brand", "price"]
# product_id is an integer payload with an integer index (exact match); the others as DESIGN.md says.
PAYLOAD_INDEXES = {
    "category": "keyword",
    "brand": "keyword",
    "product_id": "integer",
    "price": "float",
    "model_version": "keyword",
}


def as_floats(vector: Sequence[float]) -> list[float]:
    """A plain list of floats; numpy arrays convert in C (300k x 1000 floats add up)."""
    tolist = getattr(vector, "tolist", None)
    return tolist() if tolist is not None else [float(x) for x in vector]  # type: ignore[no-any-return]


class IndexUnavailable(RuntimeError):
    """The vector store could not be reached or refused the operation; worth retrying later."""


class IndexBusy(IndexUnavailable):
    """Another process holds this Qdrant Edge shard (it is locked to one process)."""


@dataclass(frozen=True)
class IndexPoint:
    id: int
    vector: Sequence[float]
    payload: dict[str, Any]


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
    model_version: str | None = None  # only points embedded by this model: vectors of two models never mix

    @property
    def empty(self) -> bool:
        return not (self.categories or self.brands or self.exclude_product_ids or self.model_version) and (
            self.price_min is None and self.price_max is None
        )


class SearchOne:
    """`search` for one vector, in terms of the implementation's `search_batch`."""

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[list[Hit]]:
        raise NotImplementedError

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[Hit]:
        return self.search_batch([vector], limit=limit, where=where, max_distance=max_distance)[0]


class VectorIndex(Protocol):
    """One collection of 1000-d Euclidean points keyed by image id."""

    name: str

    def upsert(self, points: Sequence[IndexPoint]) -> None:
        """Insert or replace points; returns once they are searchable."""

    def delete(self, ids: Sequence[int]) -> None:
        """Remove points by image id; unknown ids are ignored."""

    def delete_product(self, product_id: int) -> None:
        """Remove every point of a product."""

    def set_product_payload(self, product_id: int, payload: dict[str, Any]) -> None:
        """Update payload fields on every point of a product."""

    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[Hit]:
        """Nearest points in ascending distance."""

    def search_batch(
        self,
        vectors: Sequence[Sequence[float]],
        *,
        limit: int,
        where: SearchFilter | None = None,
        max_distance: float | None = None,
    ) -> list[list[Hit]]:
        """One `search` per vector, planned and run as one batch."""

    def vectors(self, ids: Sequence[int]) -> dict[int, list[float]]:
        """Stored vectors by image id; missing ids are left out."""

    def ids(self) -> set[int]:
        """Every point id in the collection."""

    def payloads(self) -> dict[int, dict[str, Any]]:
        """Every point's product fields (product_id, category, brand, price), by point id."""

    def count(self) -> int:
        """Number of points."""

    def optimize(self) -> None:
        """Build the search index (HNSW) for points added since; a no-op where the store does it itself."""

    def optimize_if_needed(self) -> bool:
        """`optimize` if points were written since the last one; whether it ran."""

    @property
    def ready(self) -> bool:
        """Whether the store's data is in memory (Edge warms its files at open; a server always answers)."""

    def close(self) -> None:
        """Release files or connections."""
