"""Photos: delete one; serve the stored files by URL."""

from __future__ import annotations

import logging
from typing import Any

from apiflask import APIBlueprint
from flask import send_file, send_from_directory

from backend.api.auth import admin_auth
from backend.api.errors import ApiError
from backend.config import current_settings
from backend.core.extensions import db
from backend.core.uploads import storage
from backend.domain.photos import STORED_NAME
from backend.services import catalog

log = logging.getLogger(__name__)
bp = APIBlueprint("images", __name__, url_prefix="/api/v1/images", tag="Images")
media_bp = APIBlueprint("media", __name__, url_prefix="/media", enable_openapi=False)


@bp.delete("/<int:image_id>")
@bp.doc(operation_id="deletePhoto")
@bp.auth_required(admin_auth)
@bp.output({}, status_code=204)
def delete(image_id: int) -> Any:
    """Delete one photo and its point."""
    catalog.remove_photo(session=db.session, image_id=image_id)
    return ""


@media_bp.get("/<path:name>")
def serve(name: str) -> Any:
    """A stored photo, by its server-made name."""
    if not STORED_NAME.fullmatch(name):
        raise ApiError(404, "not_found", "no such photo")
    return send_from_directory(current_settings().media_root.resolve(), name, max_age=86400)


@media_bp.get("/thumbs/<path:name>")
def thumbnail(name: str) -> Any:
    """A photo's thumbnail (JPEG, longer side 320 px), by the photo's stored name; made on first request if the
    worker has not made it yet."""
    if not STORED_NAME.fullmatch(name):
        raise ApiError(404, "not_found", "no such photo")
    try:
        path = storage().thumbnail(name, max_pixels=current_settings().max_image_pixels)
    except FileNotFoundError:
        raise ApiError(404, "not_found", "no such photo") from None
    except Exception as exc:  # a stored file that is not a readable image
        log.warning("thumbnail of %s: %s: %s", name, type(exc).__name__, exc)
        raise ApiError(404, "not_found", "this photo cannot be shown") from None
    return send_file(path, mimetype="image/jpeg", max_age=86400)
