"""Nearest products: query the index with a product's photos, keep each product's closest photo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from flask import url_for
from sqlalchemy import select

from backend.extensions import DbSession
from backend.index import SearchFilter, VectorIndex
from backend.models import Product, ProductImage

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
        for hits in index.search_batch(vectors, limit=fetch, where=where, max_distance=max_distance):
            if len(hits) == fetch:
                threshold = min(threshold, hits[-1].distance)
            for hit in hits:
                pid = hit.product_id
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


def public_products(*, session: DbSession, product_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Products with their photos as the API shows them (the shape of ProductOut), in two plain queries.

    The hot path of every similar-items answer: ORM objects and schema dumps cost more than the
    vector search here, so rows go straight to dicts. A test keeps this equal to ProductOut.
    """
    products: dict[int, dict[str, Any]] = {}
    for row in session.execute(select(Product.__table__).where(Product.id.in_(list(product_ids)))).mappings():
        products[row["id"]] = {
            "id": row["id"],
            "sku": row["sku"],
            "title": row["title"],
            "category": row["category"],
            "brand": row["brand"],
            "price": float(row["price"]) if row["price"] is not None else None,
            "attributes": row["attributes"],
            "images": [],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        }
    image_rows = session.execute(
        select(ProductImage.__table__).where(ProductImage.product_id.in_(list(products))).order_by(ProductImage.id)
    ).mappings()
    media = url_for("media.serve", name="x")[:-1]
    for row in image_rows:
        products[row["product_id"]]["images"].append(
            {
                "id": row["id"],
                "url": media + row["stored_name"],
                "status": row["status"],
                "error": row["error"],
                "width": row["width"],
                "height": row["height"],
                "content_type": row["content_type"],
                "original_filename": row["original_filename"],
                "model_version": row["model_version"],
                "indexed_at": row["indexed_at"].isoformat() if row["indexed_at"] is not None else None,
            }
        )
    return products


def hydrate(*, session: DbSession, neighbours: Sequence[Neighbour]) -> list[tuple[Neighbour, dict[str, Any]]]:
    """The neighbours' products in two queries; points whose product is gone are dropped."""
    products = public_products(session=session, product_ids=[n.product_id for n in neighbours])
    return [(n, products[n.product_id]) for n in neighbours if n.product_id in products]
