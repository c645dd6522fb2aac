"""Similar items: the nearest other products to a product's photos."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from backend.api import index, settings
from backend.api.schemas import SimilarOut, SimilarQuery
from backend.embedding import current_embedder
from backend.errors import ApiError
from backend.extensions import db
from backend.index import SearchFilter
from backend.models import ImageStatus
from backend.products import get_product, image_status_counts
from backend.similar import exclude_product, hydrate, nearest_products

bp = APIBlueprint("similar", __name__, url_prefix="/api/v1", tag="Similar items")


def search_filter(query: dict[str, Any], model_version: str) -> SearchFilter:
    if query["price_min"] is not None and query["price_max"] is not None and query["price_min"] > query["price_max"]:
        raise ApiError(400, "invalid_field", "price_min: must not be greater than price_max", field="price_min")
    return SearchFilter(
        categories=tuple(query["category"]),
        brands=tuple(query["brand"]),
        price_min=query["price_min"],
        price_max=query["price_max"],
        model_version=model_version,
    )


@bp.get("/products/<int:product_id>/similar")
@bp.input(SimilarQuery, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(responses={409: "the product has no indexed photo yet"})
def similar_to_product(product_id: int, query: dict[str, Any]) -> Any:
    """Products that look like this one, nearest first, one entry per product, never itself."""
    model_version = current_embedder(settings()).model_version
    where = search_filter(query, model_version)
    product = get_product(session=db.session, product_id=product_id)
    indexed = [i.id for i in product.images if i.status == ImageStatus.indexed and i.model_version == model_version]
    vectors = list(index().vectors(indexed).values()) if indexed else []
    if not vectors:
        raise ApiError(
            409,
            "not_indexed",
            f"product {product_id} has no photo indexed by the active model yet",
            status=image_status_counts(session=db.session, product_id=product_id),
        )
    neighbours = nearest_products(
        index=index(),
        vectors=vectors,
        where=exclude_product(where, product_id),
        limit=query["limit"],
        offset=query["offset"],
        max_distance=query["max_distance"],
    )
    items = [
        {"product": found, "distance": n.distance, "image_id": n.image_id}
        for n, found in hydrate(session=db.session, neighbours=neighbours)
    ]
    return {"items": items, "model_version": model_version, "limit": query["limit"], "offset": query["offset"]}
