"""Celery tasks: thin, they take ids and call library code."""

from __future__ import annotations

import logging

from celery import shared_task
from flask import current_app

from backend.embedding import current_embedder
from backend.extensions import db
from backend.index import IndexUnavailable, open_index
from backend.indexing import index_images, mark_failed
from backend.media import MediaStorage

log = logging.getLogger(__name__)


@shared_task(name="lookalike.embed_images")
def embed_images(image_ids: list[int]) -> dict[str, int]:
    """Embed photos by id with the active model and upsert them into the index."""
    settings = current_app.config["SETTINGS"]
    try:
        report = index_images(
            session=db.session,
            index=open_index(settings),
            embedder=current_embedder(settings),
            storage=MediaStorage(settings.media_root),
            image_ids=image_ids,
            max_pixels=settings.max_image_pixels,
        )
    except Exception as exc:
        # No photo stays pending in silence: record why, the sweep re-enqueues transient failures.
        db.session.rollback()
        kind = "vector index unavailable" if isinstance(exc, IndexUnavailable) else "embedding failed"
        log.exception("embed_images %s: %s", image_ids[:10], kind)
        mark_failed(session=db.session, image_ids=image_ids, reason=f"{kind}: {type(exc).__name__}: {exc}")
        return {"failed": len(image_ids)}
    return {
        "indexed": len(report.indexed),
        "skipped": len(report.skipped),
        "failed": len(report.failed),
        "vanished": len(report.vanished),
    }
