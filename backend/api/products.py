"""Products: create with photos, list, get, patch, delete, add photos."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from backend.api.auth import admin_auth
from backend.api.deps import checked_uploads, storage
from backend.api.schemas import (
    ImagesIn,
    ImagesOut,
    ListQuery,
    ProductCreateIn,
    ProductOut,
    ProductPageOut,
    ProductPatchIn,
)
from backend.db.products import (
    ProductIn,
    add_images,
    create_product,
    delete_product,
    get_product,
    list_products,
    update_product,
)
from backend.extensions import db
from backend.pipeline.enqueue import enqueue_embedding, enqueue_payload_sync, enqueue_point_deletes

bp = APIBlueprint("products", __name__, url_prefix="/api/v1/products", tag="Products")


@bp.post("")
@bp.doc(operation_id="createProduct")
@bp.auth_required(admin_auth)
@bp.input(ProductCreateIn, location="form_and_files", arg_name="form")
@bp.output(ProductOut, status_code=201)
def create(form: dict[str, Any]) -> Any:
    """Create a product with one or more photos; they are embedded after the commit."""
    images = checked_uploads(form.pop("images"))
    product = create_product(session=db.session, storage=storage(), product_in=ProductIn(**form), images=images)
    enqueue_embedding([image.id for image in product.images])
    # An in-process task has updated the rows through its own session: read them again.
    db.session.expire_all()
    return get_product(session=db.session, product_id=product.id)


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
        categories=query["category"],
        sku=query["sku"],
    )
    return {"items": items, "total": total, "page": query["page"], "per_page": query["per_page"]}


@bp.get("/<int:product_id>")
@bp.doc(operation_id="getProduct")
@bp.output(ProductOut)
def get(product_id: int) -> Any:
    """One product with its photos and their indexing status."""
    return get_product(session=db.session, product_id=product_id)


@bp.patch("/<int:product_id>")
@bp.doc(operation_id="updateProduct")
@bp.auth_required(admin_auth)
@bp.input(ProductPatchIn, arg_name="changes")
@bp.output(ProductOut)
def patch(product_id: int, changes: dict[str, Any]) -> Any:
    """Change product fields; category, brand and price are mirrored into the index."""
    product = get_product(session=db.session, product_id=product_id)
    product, payload_changed = update_product(session=db.session, product=product, changes=changes)
    if payload_changed:
        enqueue_payload_sync(product.id)  # after the commit; the sweep repairs it if the store was away
    return product


@bp.delete("/<int:product_id>")
@bp.doc(operation_id="deleteProduct")
@bp.auth_required(admin_auth)
@bp.output({}, status_code=204)
def delete(product_id: int) -> Any:
    """Delete a product, its photos and their points."""
    product = get_product(session=db.session, product_id=product_id)
    enqueue_point_deletes(delete_product(session=db.session, storage=storage(), product=product))
    return ""


@bp.post("/<int:product_id>/images")
@bp.doc(operation_id="addPhotos")
@bp.auth_required(admin_auth)
@bp.input(ImagesIn, location="form_and_files", arg_name="form")
@bp.output(ImagesOut, status_code=201)
def add_photos(product_id: int, form: dict[str, Any]) -> Any:
    """Add photos to a product; they are embedded after the commit."""
    product = get_product(session=db.session, product_id=product_id)
    images = checked_uploads(form["images"])
    added = add_images(session=db.session, storage=storage(), product=product, images=images)
    ids = [image.id for image in added]
    enqueue_embedding(ids)
    db.session.expire_all()
    return {
        "items": [image for image in get_product(session=db.session, product_id=product_id).images if image.id in ids]
    }
