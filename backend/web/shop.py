"""The shopper's pages, public and read-only: the catalog, a product with its look-alikes, search by photo."""

from __future__ import annotations

import base64
from typing import Any

from apiflask import Schema, fields, validators
from flask import render_template, request, url_for
from marshmallow import ValidationError

from backend.config import current_settings
from backend.core.extensions import db, limiter
from backend.core.security import search_rate_limit
from backend.core.uploads import checked_uploads
from backend.db.products import ProductFilter, facets, get_product, list_products, photo_status_counts
from backend.domain.photos import open_photo, thumbnail_jpeg
from backend.domain.products import NAME
from backend.domain.queries import SearchQuery, SimilarQuery
from backend.errors import LookalikeError, NotIndexed
from backend.services import similar as use_case
from backend.services.similar import MAX_STEERING, SimilarItems, SimilarParams
from backend.web.forms import SearchForm, load_args
from backend.web.pages import error_page, pages_blueprint


def search_body_bytes() -> int:
    return current_settings().search_body_bytes


# The search form takes one photo: a larger body is refused (413) before it is read, as the API does.
bp = pages_blueprint("shop", __name__, body_limits={"shop.search": search_body_bytes})
PER_PAGE = 24
LOOKALIKES = 12  # shown at first; "more" adds as many again, up to the API's limit


class CatalogQuery(Schema):
    page = fields.Integer(load_default=1, validate=validators.Range(min=1, max=1_000_000))
    category = fields.List(fields.String(validate=NAME), load_default=list)
    brand = fields.List(fields.String(validate=NAME), load_default=list)
    price_min = fields.Float(load_default=None, allow_nan=False, validate=validators.Range(min=0))
    price_max = fields.Float(load_default=None, allow_nan=False, validate=validators.Range(min=0))


def _bad_query(exc: ValidationError) -> tuple[str, int]:
    messages = exc.normalized_messages()
    words = "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in messages.items())
    return error_page(400, f"A filter is not valid ({words}).")


def _filters(loaded: dict[str, Any]) -> dict[str, Any]:
    categories, brands = facets(session=db.session)
    return {"categories": categories, "brands": brands, "chosen": loaded}


@bp.get("/")
def catalog() -> Any:
    """Every product as a thumbnail with title, price and category; filters and pages."""
    try:
        query = load_args(CatalogQuery(), request.args)
    except ValidationError as exc:
        return _bad_query(exc)
    items, total = list_products(
        session=db.session,
        page=query["page"],
        per_page=PER_PAGE,
        where=ProductFilter(query["category"], query["brand"], query["price_min"], query["price_max"]),
    )
    pages = max(1, -(-total // PER_PAGE))
    return render_template(
        "shop/catalog.html", items=items, total=total, page=query["page"], pages=pages, **_filters(query)
    )


@bp.get("/products/<int:product_id>")
def product(product_id: int) -> Any:
    """A product's photos and its look-alikes as pictures, with their distance; filters and "more"."""
    item = get_product(session=db.session, product_id=product_id)
    try:
        query = load_args(SimilarQuery(), request.args)
    except ValidationError as exc:
        return _bad_query(exc)
    query["limit"] = query["limit"] if "limit" in request.args else LOOKALIKES
    params = SimilarParams(**query)
    found: SimilarItems | None = None
    waiting: str | None = None
    try:
        found = use_case.similar_to_product(
            session=db.session, settings=current_settings(), product_id=product_id, params=params
        )
    except NotIndexed as exc:
        if exc.extra.get("field"):  # a liked or unliked product, not this one, has no vector yet
            return error_page(409, exc.message)
        counts = photo_status_counts(session=db.session, product_id=product_id)
        waiting = "Look-alikes appear once a photo is indexed: " + ", ".join(
            f"{n} {status}" for status, n in counts.items() if n
        )
    except LookalikeError as exc:  # a filter the use case refuses (price_min above price_max), an unknown like
        return error_page(exc.status, exc.message)
    more = None
    if found is not None and len(found.items) == params.limit and params.limit < 100:
        more = url_for("shop.product", product_id=product_id, **_args_with(limit=min(100, params.limit + LOOKALIKES)))
    steer = _steering_links(product_id, params, found)
    return render_template(
        "shop/product.html",
        product=item,
        found=found,
        waiting=waiting,
        more=more,
        steer=steer,
        default_look=current_settings().look_default,
        **_filters(query),
    )


def _steering_links(product_id: int, params: SimilarParams, found: SimilarItems | None) -> dict[int, dict[str, str]]:
    """Per look-alike: the page again with it liked ("more like this") or unliked ("less like this")."""
    if found is None:
        return {}
    links = {}
    for neighbour, _ in found.items:
        pid = neighbour.product_id
        liked = [p for p in params.like if p != pid]
        unliked = [p for p in params.unlike if p != pid]
        links[pid] = {
            "more": url_for(
                "shop.product", product_id=product_id, **_args_with(like=[*liked, pid][-MAX_STEERING:], unlike=unliked)
            ),
            "less": url_for(
                "shop.product", product_id=product_id, **_args_with(unlike=[*unliked, pid][-MAX_STEERING:], like=liked)
            ),
        }
    return links


def _args_with(**changes: Any) -> dict[str, Any]:
    """The page's query string with some parameters replaced (a list replaces a repeatable one)."""
    args = {k: request.args.getlist(k) for k in request.args}
    args.update({k: [str(x) for x in v] if isinstance(v, list) else [str(v)] for k, v in changes.items()})
    return args


@bp.route("/search", methods=["GET", "POST"])
@limiter.limit(search_rate_limit, methods=["POST"])
def search() -> Any:
    """Upload a photo (drag and drop or the file field) and see what looks like it; nothing is stored."""
    form = SearchForm()
    categories, brands = facets(session=db.session)
    context: dict[str, Any] = {
        "form": form,
        "categories": categories,
        "brands": brands,
        "chosen": {},
        "default_look": current_settings().look_default,
    }
    if request.method == "GET":
        return render_template("shop/search.html", **context)
    try:
        query = load_args(SearchQuery(), request.form)
    except ValidationError as exc:
        return _bad_query(exc)
    query["limit"] = query["limit"] if request.form.get("limit") else LOOKALIKES
    context["chosen"] = query
    upload = request.files.get("image")
    try:
        box = use_case.parse_box(query.pop("box", None))
        photo = checked_uploads([upload] if upload and upload.filename else [])[0]
        found = use_case.similar_to_upload(
            session=db.session, settings=current_settings(), photo=photo, params=SimilarParams(**query), box=box
        )
    except LookalikeError as exc:
        form.image.errors = [exc.message]
        return render_template("shop/search.html", **context), exc.status
    preview = _preview(photo.data)
    return render_template("shop/search.html", found=found, preview=preview, **context)


def _preview(data: bytes) -> str:
    """The uploaded photo, small, as a data: URL (it is not stored, so it has no address)."""
    settings = current_settings()
    jpeg = thumbnail_jpeg(open_photo(data, settings.max_image_pixels, settings.max_aspect_ratio))
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
