"""The JSON API under /api/v1: one blueprint per resource."""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app
from werkzeug.datastructures import FileStorage

from backend.active_index import Active, active_collection, active_index, index_for
from backend.config import Settings
from backend.errors import ApiError
from backend.extensions import db
from backend.index import VectorIndex
from backend.media import CheckedImage, MediaStorage, check_image


def settings() -> Settings:
    return current_app.config["SETTINGS"]  # type: ignore[no-any-return]


def storage() -> MediaStorage:
    return MediaStorage(settings().media_root)  # type: ignore[arg-type]


def live_collection() -> Active:
    """The active collection from the database, without touching the vector store."""
    return active_collection(session=db.session, settings=settings())


def live_index(active: Active) -> VectorIndex:
    """The index of `active`, as read once by the request."""
    return index_for(settings(), active)


def live() -> tuple[Active, VectorIndex]:
    """The active collection (name and model version, read together) and its index."""
    return active_index(session=db.session, settings=settings())


def checked_uploads(files: Sequence[FileStorage], *, required: bool = True) -> list[CheckedImage]:
    """Check every uploaded photo before any is stored, so a bad one leaves nothing behind."""
    files = [f for f in files if f is not None]
    cfg = settings()
    if required and not files:
        raise ApiError(400, "invalid_field", "images: at least one photo is required", field="images")
    if len(files) > cfg.max_images_per_request:
        raise ApiError(
            400, "invalid_field", f"images: at most {cfg.max_images_per_request} photos per request", field="images"
        )
    limit = cfg.max_upload_bytes
    # Read one byte past the limit: enough to know a file is too large without reading all of it.
    return [
        check_image(f.stream.read(limit + 1), filename=f.filename, max_bytes=limit, max_pixels=cfg.max_image_pixels)
        for f in files
    ]


def enqueue_embedding(image_ids: list[int]) -> None:
    """Enqueue after the commit (one task per batch of photos); without a broker this runs now."""
    from workers.tasks import enqueue_embedding as enqueue

    enqueue(image_ids)


def enqueue_point_deletes(image_ids: list[int]) -> None:
    from workers.tasks import delete_points

    if image_ids:
        delete_points.delay(image_ids)


def enqueue_payload_sync(product_id: int) -> None:
    from workers.tasks import sync_product

    sync_product.delay(product_id)
