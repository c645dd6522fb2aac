"""Catalog writes, one function per use case, shared by the API and the pages.

Each checks every photo before anything is stored, writes and commits through `backend.db`, then hands
the embedding or index upkeep to the pipeline (a Celery task with a broker, in this process without)."""

from __future__ import annotations

from collections.abc import Sequence

from backend.config import current_settings
from backend.core.extensions import DbSession
from backend.core.uploads import checked_uploads, storage
from backend.db.models import Product, ProductImage
from backend.db.photos import reset_failed
from backend.db.products import (
    ProductIn,
    add_product_photos,
    create_product,
    delete_photo,
    delete_product,
    get_photo,
    get_product,
    update_product,
)
from backend.domain.photos import Upload
from backend.domain.products import ProductChanges
from backend.services.duplicates import refuse_duplicates
from backend.worker.enqueue import enqueue_embedding, enqueue_payload_sync, enqueue_point_deletes


def create_with_photos(*, session: DbSession, product_in: ProductIn, uploads: Sequence[Upload]) -> Product:
    """A new product with one or more photos, queued for embedding; nothing is stored when a photo is refused."""
    images = checked_uploads(uploads)
    refuse_duplicates(session=session, settings=current_settings(), images=images)
    product = create_product(session=session, storage=storage(), product_in=product_in, images=images)
    enqueue_embedding([image.id for image in product.images])
    # An in-process task has updated the rows through its own session: read them again.
    session.expire_all()
    return get_product(session=session, product_id=product.id)


def add_photos(*, session: DbSession, product_id: int, uploads: Sequence[Upload]) -> list[ProductImage]:
    """More photos for a product, queued for embedding; returns them as stored."""
    product = get_product(session=session, product_id=product_id)
    images = checked_uploads(uploads)
    refuse_duplicates(session=session, settings=current_settings(), images=images, product_id=product_id)
    ids = [image.id for image in add_product_photos(session=session, storage=storage(), product=product, images=images)]
    enqueue_embedding(ids)
    session.expire_all()
    return [image for image in get_product(session=session, product_id=product_id).images if image.id in ids]


def change_product(*, session: DbSession, product_id: int, changes: ProductChanges) -> Product:
    """Change fields; category, brand and price are copied onto the product's points after the commit."""
    product = get_product(session=session, product_id=product_id)
    product, payload_changed = update_product(session=session, product=product, changes=changes)
    if payload_changed:
        enqueue_payload_sync(product.id)  # the sweep repairs it if the store was away
    return product


def remove_product(*, session: DbSession, product_id: int) -> None:
    """Delete a product, its photos and their points."""
    product = get_product(session=session, product_id=product_id)
    enqueue_point_deletes(delete_product(session=session, storage=storage(), product=product))


def remove_photo(*, session: DbSession, image_id: int) -> int:
    """Delete one photo and its point; returns its product's id."""
    image = get_photo(session=session, image_id=image_id)
    product_id = image.product_id
    enqueue_point_deletes(delete_photo(session=session, storage=storage(), image=image))
    return product_id


def retry_failed(*, session: DbSession, image_ids: Sequence[int] | None = None) -> list[int]:
    """Embed failed photos (these, or all) again; returns the ids queued."""
    ids = reset_failed(session=session, image_ids=image_ids)
    enqueue_embedding(ids)
    return ids
