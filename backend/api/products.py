"""Products: create with photos, list, get, patch, delete, add photos."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from backend.api.auth import admin_auth
from backend.api.schemas import (
    ImagesIn,
    ImagesOut,
    ListQuery,
    ProductCreateIn,
    ProductOut,
    ProductPageOut,
    ProductPatchIn,
)
from backend.core.extensions import db
from backend.db.products import ProductFilter, ProductIn, get_product, list_products
from backend.domain.products import ProductChanges
from backend.services import catalog

bp = APIBlueprint("products", __name__, url_prefix="/api/v1/products", tag="Products")
# What the calls that take photos answer besides 400 for a photo they refuse.
PHOTOS_REFUSED = {
    413: "the request is larger than MAX_UPLOAD_MB",
    415: "a file is not a JPEG, PNG, GIF or WebP image",
}


@bp.post("")
@bp.doc(
    operation_id="createProduct",
    responses={409: "the sku is taken, or a photo is a duplicate (DUPLICATES=reject)", **PHOTOS_REFUSED},
)
@bp.auth_required(admin_auth)
@bp.input(ProductCreateIn, location="form_and_files", arg_name="form")
@bp.output(ProductOut, status_code=201)
def create(form: dict[str, Any]) -> Any:
    """Create a product with one or more photos; they are embedded after the commit."""
    uploads = form.pop("images")
    return catalog.create_with_photos(session=db.session, product_in=ProductIn(**form), uploads=uploads)


@bp.get("")
@bp.doc(operation_id="listProducts")
@bp.input(ListQuery, location="query", arg_name="query")
@bp.output(ProductPageOut)
def list_(query: dict[str, Any]) -> Any:
    """List products, newest last, optionally only some categories or the one with a sku."""
    items, total = list_products(
        session=db.session,
        page=query["page"],
        per_page=query["per_page"],
        where=ProductFilter(categories=query["category"], sku=query["sku"]),
    )
    return {"items": items, "total": total, "page": query["page"], "per_page": query["per_page"]}


@bp.get("/<int:product_id>")
@bp.doc(operation_id="getProduct")
@bp.output(ProductOut)
def get(product_id: int) -> Any:
    """One product with its photos and their indexing status."""
    return get_product(session=db.session, product_id=product_id)


@bp.patch("/<int:product_id>")
@bp.doc(operation_id="updateProduct", responses={409: "the new sku is another product's"})
@bp.auth_required(admin_auth)
@bp.input(ProductPatchIn, arg_name="changes")
@bp.output(ProductOut)
def patch(product_id: int, changes: ProductChanges) -> Any:
    """Change product fields; category, brand and price are mirrored into the index."""
    return catalog.change_product(session=db.session, product_id=product_id, changes=changes)


@bp.delete("/<int:product_id>")
@bp.doc(operation_id="deleteProduct")
@bp.auth_required(admin_auth)
@bp.output({}, status_code=204)
def delete(product_id: int) -> Any:
    """Delete a product, its photos and their points."""
    catalog.remove_product(session=db.session, product_id=product_id)
    return ""


@bp.post("/<int:product_id>/images")
@bp.doc(operation_id="addPhotos", responses={409: "a photo is a duplicate (DUPLICATES=reject)", **PHOTOS_REFUSED})
@bp.auth_required(admin_auth)
@bp.input(ImagesIn, location="form_and_files", arg_name="form")
@bp.output(ImagesOut, status_code=201)
def add_photos(product_id: int, form: dict[str, Any]) -> Any:
    """Add photos to a product; they are embedded after the commit."""
    return {"items": catalog.add_photos(session=db.session, product_id=product_id, uploads=form["images"])}
