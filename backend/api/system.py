"""Health and statistics."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from apiflask import APIBlueprint
from flask import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from backend.api.auth import admin_auth
from backend.api.schemas import HealthOut, StatsOut
from backend.config import current_settings
from backend.db.models import Product
from backend.db.products import image_status_counts
from backend.extensions import db
from backend.index import IndexUnavailable
from backend.metrics import INDEX_POINTS, PHOTOS, REGISTRY
from backend.pipeline.active import active_index
from backend.pipeline.embedders import embedder_for
from ml.versions import Origin

if TYPE_CHECKING:
    from ml.embedder import EmbedderInfo

log = logging.getLogger(__name__)
bp = APIBlueprint("system", __name__, url_prefix="/api/v1", tag="System")
metrics_bp = APIBlueprint("metrics", __name__, enable_openapi=False)


@bp.get("/health")
@bp.output(HealthOut)
@bp.doc(operation_id="getHealth", responses={200: "ready", 503: "the database or the vector index is unavailable"})
def health() -> Any:
    """200 when the database and the vector index answer, 503 otherwise."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # report, never raise: this is what monitors poll
        log.warning("health: database: %s: %s", type(exc).__name__, exc)
        checks["database"] = "unavailable"
    try:
        active_index(session=db.session, settings=current_settings())[1].count()
        checks["index"] = "ok"
    except Exception as exc:
        log.warning("health: vector index: %s: %s", type(exc).__name__, exc)
        checks["index"] = "unavailable"
    ok = all(v == "ok" for v in checks.values())
    return {"status": "ok" if ok else "degraded", **checks}, 200 if ok else 503


def collect_stats() -> dict[str, Any]:
    cfg = current_settings()
    active, vectors = active_index(session=db.session, settings=cfg)
    embedder = embedder_for(cfg, active.model_version)
    return {
        "products": db.session.scalar(select(func.count()).select_from(Product)),
        "images": image_status_counts(session=db.session),
        "index": {
            "backend": "qdrant-edge" if cfg.embedded_index else "qdrant-server",
            "collection": active.name,
            "points": vectors.count(),
            "warm": vectors.ready,
        },
        "model": model_info(embedder.info),
        "tasks": "in-process" if cfg.tasks_in_process else "celery",
    }


def model_info(info: EmbedderInfo) -> dict[str, Any]:
    """The model that embeds: its version, backbone, and whether it is ImageNet-pretrained or fine-tuned."""
    return {
        "version": info.model_version,
        "arch": info.arch,
        "origin": info.origin.value,
        "pretrained": info.origin is Origin.pretrained,
        "fine_tuned": info.origin is Origin.fine_tuned,
        "trained": info.trained,
        "normalize": info.normalize.value,
        "image_size": info.image_size,
        "device": info.device,
        "note": None
        if info.trained
        else "untrained network (DEFAULT_MODEL=untrained): similar items reflect pixels, not looks",
    }


@metrics_bp.get("/metrics")
@metrics_bp.auth_required(admin_auth)
def metrics() -> Any:
    """Prometheus metrics (the admin token as a bearer token): latency by route, photos, index points, embedding."""
    for status, count in image_status_counts(session=db.session).items():
        PHOTOS.labels(status).set(count)
    try:
        INDEX_POINTS.set(active_index(session=db.session, settings=current_settings())[1].count())
    except IndexUnavailable:
        INDEX_POINTS.set(float("nan"))  # the store is away: no figure rather than a wrong one
    return Response(generate_latest(REGISTRY), mimetype=CONTENT_TYPE_LATEST)


@bp.get("/stats")
@bp.output(StatsOut)
@bp.doc(operation_id="getStats", responses={200: "statistics", 503: "the vector index is unavailable"})
def stats() -> Any:
    """Photos by status, points in the index, and the model that embeds."""
    return collect_stats()
