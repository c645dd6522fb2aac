"""Catalog feeds through the API: sent, run in the background, and followed by their progress."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from flask import request, url_for

from backend.api.auth import admin_auth
from backend.api.schemas import ImportIn, ImportOut
from backend.config import current_settings
from backend.core.extensions import db
from backend.services import imports

bp = APIBlueprint("imports", __name__, url_prefix="/api/v1", tag="Imports")


def import_body() -> None:
    """A feed and its zip may be far larger than a product's photos: IMPORT_MAX_MB for this one route."""
    if request.endpoint == "imports.create":
        request.max_content_length = current_settings().import_max_bytes


bp.before_request(import_body)


@bp.post("/imports")
@bp.doc(
    operation_id="createImport",
    responses={
        400: "not a .csv or .jsonl feed, not a zip, or no photos (no zip and no IMPORT_DIR)",
        413: "larger than IMPORT_MAX_MB",
    },
)
@bp.auth_required(admin_auth)
@bp.input(ImportIn, location="form_and_files", arg_name="form")
@bp.output(ImportOut, status_code=202)
def create(form: dict[str, Any]) -> Any:
    """Import a catalog feed (upsert by sku) with a zip of its photos, or photos under IMPORT_DIR.

    Answers at once with the import's id; `GET /api/v1/imports/<id>` shows its progress and skipped rows."""
    feed, photos = form["feed"], form["photos"]
    record = imports.create_import(
        session=db.session,
        settings=current_settings(),
        feed=feed.stream,
        feed_name=feed.filename or "feed",
        photos_zip=photos.stream if photos is not None else None,
        dry_run=form["dry_run"],
    )
    imports.start_import(record.id)
    db.session.expire_all()
    location = url_for("imports.get", import_id=record.id)
    return imports.get_import(session=db.session, import_id=record.id), 202, {"Location": location}


@bp.get("/imports/<int:import_id>")
@bp.doc(operation_id="getImport", responses={404: "unknown import"})
@bp.auth_required(admin_auth)
@bp.output(ImportOut)
def get(import_id: int) -> Any:
    """An import's state, progress (rows done of rows total), summary and skipped rows with their reasons."""
    return imports.get_import(session=db.session, import_id=import_id)
