"""The JSON API under /api/v1: one blueprint per resource."""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app
from werkzeug.datastructures import FileStorage

from backend.config import Settings
from backend.errors import ApiError
from backend.index import VectorIndex, open_index
from backend.media import CheckedImage, MediaStorage, check_image


def settings() -> Settings:
    return current_app.config["SETTINGS"]  # type: ignore[no-any-return]


def storage() -> MediaStorage:
    return MediaStorage(settings().media_root)  # type: ignore[arg-type]


def index() -> VectorIndex:
    return open_index(settings())


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
    """Enqueue after the commit; without a broker this runs now, in this process."""
    from workers.tasks import embed_images

    if image_ids:
        embed_images.delay(image_ids)
