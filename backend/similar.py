"""Nearest products: query the index with a product's photos, keep each product's closest photo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from backend.extensions import DbSession
from backend.index import SearchFilter, VectorIndex
from backend.models import Product

MAX_CANDIDATES = 20_000


@dataclass(frozen=True)
class Neighbour:
    product_id: int
    image_id: int
    distance: float


def nearest_products(
    *,
    index: VectorIndex,
    vectors: Sequence[Sequence[float]],
    where: SearchFilter,
    limit: int,
    offset: int = 0,
    max_distance: float | None = None,
) -> list[Neighbour]:
    """The products ranked by their closest photo to any of the query vectors, exactly.

    Each query vector fetches its `fetch` nearest points. Let T be the smallest of the
    per-vector cut-off distances (infinite for a vector whose search came back short). Any
    product not yet seen is farther than T from every query vector, so the products seen at
    distance <= T are complete and correctly ranked. Fetch more until enough of them are.
    """
    wanted = offset + limit
    fetch = max(2 * wanted, 32)
    while True:
        best: dict[int, Neighbour] = {}
        threshold = float("inf")
        for vector in vectors:
            hits = index.search(vector, limit=fetch, where=where, max_distance=max_distance)
            if len(hits) == fetch:
                threshold = min(threshold, hits[-1].distance)
            for hit in hits:
                pid = int(hit.payload["product_id"])
                seen = best.get(pid)
                if seen is None or (hit.distance, hit.id) < (seen.distance, seen.image_id):
                    best[pid] = Neighbour(pid, hit.id, hit.distance)
        ranked = sorted(best.values(), key=lambda n: (n.distance, n.product_id))
        settled = [n for n in ranked if n.distance <= threshold]
        if len(settled) >= wanted or threshold == float("inf"):
            return settled[offset:wanted]
        if fetch >= MAX_CANDIDATES:
            return ranked[offset:wanted]  # best effort past the candidate cap
        fetch = min(fetch * 4, MAX_CANDIDATES)


def exclude_product(where: SearchFilter, product_id: int) -> SearchFilter:
    return replace(where, exclude_product_ids=(*where.exclude_product_ids, product_id))


def hydrate(*, session: DbSession, neighbours: Sequence[Neighbour]) -> list[tuple[Neighbour, Product]]:
    """Load the neighbours' products in one query; drop points whose product is gone."""
    ids = [n.product_id for n in neighbours]
    products = {
        p.id: p
        for p in session.scalars(select(Product).where(Product.id.in_(ids)).options(selectinload(Product.images)))
    }
    return [(n, products[n.product_id]) for n in neighbours if n.product_id in products]
