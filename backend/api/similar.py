"""Similar items: the nearest other products to a product, to one of its photos, or to an uploaded photo."""

from __future__ import annotations

from typing import Any

import orjson
from apiflask import APIBlueprint
from flask import Response, current_app, request

from backend.api.schemas import PhotoIn, SearchQueryIn, SimilarOut, SimilarQueryIn, similar_body
from backend.config import current_settings
from backend.core.extensions import db, limiter
from backend.core.security import search_rate_limit
from backend.core.uploads import checked_uploads
from backend.errors import InvalidInput
from backend.services import similar as use_case
from backend.services.similar import SimilarParams

bp = APIBlueprint("similar", __name__, url_prefix="/api/v1", tag="Similar items")


ATTR_PREFIX = "attr."
ATTR_DOC = (
    " Filter on attributes with `attr.<key>=<value>` (repeat it: any of a key's values matches, every key must"
    " match); the keys are those declared in FILTER_ATTRIBUTES, others answer 400."
)


def query_params(query: dict[str, Any]) -> SimilarParams:
    """The parsed query string, and its `attr.<key>=<value>` filters (which no schema can declare)."""
    attributes: dict[str, list[str]] = {}
    for name in request.args:
        if not name.startswith(ATTR_PREFIX):
            continue
        key, values = name[len(ATTR_PREFIX) :], request.args.getlist(name)
        if not key:
            raise InvalidInput(name, "name the attribute: attr.<key>=<value>")
        bad = [v for v in values if not v.strip() or len(v) > 200 or not v.isprintable()]
        if bad:
            raise InvalidInput(name, "values are 1-200 printable characters")
        attributes[key] = values
    return SimilarParams(**query, attributes=attributes)


def _json(body: dict[str, Any]) -> Any:
    # Already in the shape of SimilarOut (see product_rows): no schema dump on the hot path, and orjson (a tenth of
    # the standard library's time for ten products with their photos).
    try:
        data = orjson.dumps(body)
    except TypeError:  # what orjson refuses and the standard library writes (an attribute's integer above 64 bits)
        data = current_app.json.dumps(body).encode()
    response = Response(data, mimetype="application/json")
    response.headers["X-Lookalike-Model"] = body["model_version"]  # also readable by a shop's page (CORS)
    if "arm" in body:
        response.headers["X-Lookalike-Arm"] = body["arm"]
    return response


# Every call that asks the vector index.
INDEX_DOWN = {503: "the vector index is unavailable; try again shortly"}
# The similar items of a product, by id or by sku.
PRODUCT_NOT_INDEXED = (
    "the product has no photo indexed by the active model yet, or `look` above 0 on a collection without the look"
    " vectors"
)


@bp.get("/products/sku/<path:sku>/similar")
@bp.input(SimilarQueryIn, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(
    operation_id="similarToSku",
    description=ATTR_DOC,
    responses={
        404: "no product with this sku",
        409: PRODUCT_NOT_INDEXED,
        **INDEX_DOWN,
    },
)
def similar_to_sku(sku: str, query: dict[str, Any]) -> Any:
    """As `/products/<id>/similar`, for the product with this sku: what a shop's own page knows."""
    params = query_params(query)
    found = use_case.similar_to_sku(session=db.session, settings=current_settings(), sku=sku, params=params)
    return _json(similar_body(found, params))


@bp.get("/products/<int:product_id>/similar")
@bp.input(SimilarQueryIn, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(
    operation_id="similarToProduct",
    description=ATTR_DOC,
    responses={
        404: "unknown product",
        409: PRODUCT_NOT_INDEXED,
        **INDEX_DOWN,
    },
)
def similar_to_product(product_id: int, query: dict[str, Any]) -> Any:
    """Products that look like this one (by the mean of its photos' vectors), each once, by its closest photo."""
    params = query_params(query)
    found = use_case.similar_to_product(
        session=db.session, settings=current_settings(), product_id=product_id, params=params
    )
    return _json(similar_body(found, params))


@bp.get("/images/<int:image_id>/similar")
@bp.input(SimilarQueryIn, location="query", arg_name="query")
@bp.output(SimilarOut)
@bp.doc(
    operation_id="similarToImage",
    description=ATTR_DOC,
    responses={
        404: "unknown photo",
        409: "the photo is not indexed by the active model yet, or `look` above 0 on a collection without the look"
        " vectors",
        **INDEX_DOWN,
    },
)
def similar_to_stored_photo(image_id: int, query: dict[str, Any]) -> Any:
    """Products that look like this one photo (its own product left out)."""
    params = query_params(query)
    found = use_case.similar_to_stored_photo(
        session=db.session, settings=current_settings(), image_id=image_id, params=params
    )
    return _json(similar_body(found, params))


def one_photo_body() -> None:
    """/search takes one photo: a larger body is refused (413) before it is read."""
    if request.endpoint == "similar.search_by_photo":
        request.max_content_length = current_settings().search_body_bytes


bp.before_request(one_photo_body)


@bp.post("/search")
@bp.input(SearchQueryIn, location="query", arg_name="query")
@bp.input(PhotoIn, location="files", arg_name="upload")
@bp.output(SimilarOut)
@bp.doc(
    operation_id="searchByPhoto",
    description=ATTR_DOC,
    responses={
        400: "a bad photo or parameter",
        409: "`look` above 0 on a collection without the look vectors",
        413: "photo too large",
        415: "not an image",
        **INDEX_DOWN,
        429: "too many searches from this address (RATE_LIMIT_SEARCH); Retry-After says when to try again",
    },
)
@limiter.limit(search_rate_limit)
def search_by_photo(query: dict[str, Any], upload: dict[str, Any]) -> Any:
    """Products that look like an uploaded photo (multipart field `image`); filters in the query string."""
    box = use_case.parse_box(query.pop("box"))
    params = query_params(query)
    photo = checked_uploads([upload["image"]])[0]
    found = use_case.similar_to_upload(
        session=db.session, settings=current_settings(), photo=photo, params=params, box=box
    )
    return _json(similar_body(found, params))
