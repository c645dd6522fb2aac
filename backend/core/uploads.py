"""Uploaded photos, checked before anything is stored, and the media storage: for the API and the pages."""

from __future__ import annotations

from collections.abc import Sequence

from backend.config import current_settings
from backend.domain.photos import CheckedPhoto, ImageLimits, MediaStorage, Upload, check_photo
from backend.errors import InvalidInput


def storage() -> MediaStorage:
    return MediaStorage(current_settings().media_root)


def checked_uploads(files: Sequence[Upload], *, required: bool = True) -> list[CheckedPhoto]:
    """Check every uploaded photo before any is stored, so a bad one leaves nothing behind."""
    files = [f for f in files if f is not None]
    cfg = current_settings()
    if required and not files:
        raise InvalidInput("images", "at least one photo is required")
    if len(files) > cfg.max_images_per_request:
        raise InvalidInput("images", f"at most {cfg.max_images_per_request} photos per request")
    limits = ImageLimits.of(cfg)
    # Read one byte past the limit: enough to know a file is too large without reading all of it.
    checked = [check_photo(f.stream.read(limits.max_bytes + 1), filename=f.filename, limits=limits) for f in files]
    first: dict[str, CheckedPhoto] = {}
    for image in checked:  # the same file twice in one request was stored twice
        seen = first.setdefault(image.sha256, image)
        if seen is not image:
            raise InvalidInput(
                "images", f"{image.original_filename!r} is the same file as {seen.original_filename!r}: send it once"
            )
    return checked
