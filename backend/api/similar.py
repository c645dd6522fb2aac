"""Similar items: the nearest other products to a product, to one of its photos, or to an uploaded photo."""

from __future__ import annotations

from typing import Any

import numpy as np
from apiflask import APIBlueprint
from flask import current_app

from backend.api import checked_uploads, live, live_collection, live_index, settings
from backend.api.schemas import PhotoIn, SimilarOut, SimilarQuery
from backend.config import ProductQuery
from backend.embedding import embedder_for
from backend.errors import ApiError
from backend.extensions import db
from backend.index import SearchFilter, VectorIndex
from backend.media import open_image
from backend.models import ImageStatus
from backend.products import get_image, get_product, image_status_counts
from backend.similar import exclude_product, hydrate, nearest_products

bp = APIBlueprint("similar", __name__, url_prefix="/api/v1", tag="Similar items")


def search_filter(query: dict[str, Any]) -> SearchFilter:
    if query["price_min"] is not None and query["price_max"] is not None and query["price_min"] > query["price_max"]:
        raise ApiError(400, "invalid_field", "price_min: must not be greater than price_max", field="price_min")
    return SearchFilter(
        categories=tuple(query["category"]),
        brands=tuple(query["brand"]),
        price_min=query["price_min"],
        price_max=query["price_max"],
    )


def answer(
    index: VectorIndex, vectors: list[list[float]], where: SearchFilter, query: dict[str, Any], model_version: str
) -> Any:
    """Nearest products to the query vectors, hydrated from the database in one query."""
    neighbours = nearest_products(
        index=index,
        vectors=vectors,
        where=where,
        limit=query["limit"],
        offset=query["offset"],
        max_distance=query["max_distance"],
    )
    items = [
        {"product": found, "distance": n.distance, "image_id": n.image_id}
        for n, found in hydrate(session=db.session, neighbours=neighbours)
    ]
    body = {"items": items, "model_version": model_version, "limit": query["limit"], "offset": query["offset"]}
    # Already in the shape of SimilarOut (see public_products): skip the schema dump on the hot path.
    return current_app.json.response(body)


@bp.get("/products/<int(max=2147483647):product_id>/similar")
@bp.input(SimilarQuery, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(responses={404: "unknown product", 409: "the product has no photo indexed by the active model yet"})
def similar_to_product(product_id: int, query: dict[str, Any]) -> Any:
    """Products that look like this one (by the mean of its photos' vectors), each once, by its closest photo."""
    # One collection per model: the query vectors and the points searched come from the same model.
    active = live_collection()
    model_version = active.model_version
    where = search_filter(query)
    product = get_product(session=db.session, product_id=product_id)
    indexed = [i.id for i in product.images if i.status == ImageStatus.indexed and i.model_version == model_version]
    index = live_index(active) if indexed else None
    vectors = list(index.vectors(indexed).values()) if index else []
    if vectors and settings().product_query is ProductQuery.mean:
        # As good as querying every photo on clothing-small, at one search (bench/multi_photo_query.py).
        vectors = [np.mean(np.asarray(vectors, dtype=np.float32), axis=0)]
    if not vectors:
        raise ApiError(
            409,
            "not_indexed",
            f"product {product_id} has no photo indexed by the active model yet",
            status=image_status_counts(session=db.session, product_id=product_id),
        )
    assert index is not None
    return answer(index, vectors, exclude_product(where, product_id), query, model_version)


@bp.get("/images/<int(max=2147483647):image_id>/similar")
@bp.input(SimilarQuery, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(responses={404: "unknown photo", 409: "the photo is not indexed by the active model yet"})
def similar_to_image(image_id: int, query: dict[str, Any]) -> Any:
    """Products that look like this one photo (its own product left out)."""
    active = live_collection()
    model_version = active.model_version
    where = search_filter(query)
    image = get_image(session=db.session, image_id=image_id)
    indexed = image.status == ImageStatus.indexed and image.model_version == model_version
    index = live_index(active) if indexed else None
    vectors = list(index.vectors([image_id]).values()) if index else []
    if not vectors:
        raise ApiError(
            409,
            "not_indexed",
            f"photo {image_id} is not indexed by the active model yet",
            status=image.status,
            reason=image.error,
        )
    assert index is not None
    return answer(index, vectors, exclude_product(where, image.product_id), query, model_version)


@bp.post("/search")
@bp.input(SimilarQuery, location="query", arg_name="query")
@bp.input(PhotoIn, location="files", arg_name="upload")
@bp.output(SimilarOut)
@bp.doc(responses={400: "a bad photo or parameter", 413: "photo too large", 415: "not an image"})
def search_by_photo(query: dict[str, Any], upload: dict[str, Any]) -> Any:
    """Products that look like an uploaded photo (multipart field `image`); filters in the query string."""
    cfg = settings()
    active, index = live()
    embedder = embedder_for(cfg, active.model_version)
    checked = checked_uploads([upload["image"]])[0]
    vector = embedder.embed([open_image(checked.data, cfg.max_image_pixels)])[0]
    return answer(index, [vector.tolist()], search_filter(query), query, active.model_version)
