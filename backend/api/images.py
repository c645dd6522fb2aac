"""Photos: delete one; serve the stored files by URL."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import send_from_directory

from backend.api.auth import admin_auth
from backend.api.deps import storage
from backend.api.errors import ApiError
from backend.config import current_settings
from backend.db.products import delete_image, get_image
from backend.extensions import db
from backend.media import STORED_NAME
from backend.pipeline.enqueue import enqueue_point_deletes

bp = APIBlueprint("images", __name__, url_prefix="/api/v1/images", tag="Images")
media_bp = APIBlueprint("media", __name__, url_prefix="/media", enable_openapi=False)


@bp.delete("/<int:image_id>")
@bp.doc(operation_id="deletePhoto")
@bp.auth_required(admin_auth)
@bp.output({}, status_code=204)
def delete(image_id: int) -> Any:
    """Delete one photo and its point."""
    image = get_image(session=db.session, image_id=image_id)
    enqueue_point_deletes(delete_image(session=db.session, storage=storage(), image=image))
    return ""


@media_bp.get("/<path:name>")
def serve(name: str) -> Any:
    """A stored photo, by its server-made name."""
    if not STORED_NAME.fullmatch(name):
        raise ApiError(404, "not_found", "no such photo")
    return send_from_directory(current_settings().media_root.resolve(), name, max_age=86400)
