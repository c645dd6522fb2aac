"""What the service is doing: products, photos by status, the index and the model that embeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from sqlalchemy import func, select

from backend.config import current_settings
from backend.core.extensions import db
from backend.db.models import Product
from backend.db.products import photo_status_counts
from backend.serving.active import active_index
from backend.serving.embedders import embedder_for
from ml.versions import Origin

if TYPE_CHECKING:
    from ml.embedder import EmbedderInfo


class ModelInfo(TypedDict):
    version: str
    arch: str
    origin: str
    pretrained: bool
    fine_tuned: bool
    trained: bool
    normalize: str
    image_size: int
    device: str
    note: str | None


class IndexInfo(TypedDict):
    backend: str
    collection: str
    points: int
    warm: bool


class Stats(TypedDict):
    """The one shape of the statistics: `/api/v1/stats`, the status page and `lookalike stats`."""

    products: int
    images: dict[str, int]
    index: IndexInfo
    model: ModelInfo
    tasks: str


def collect_stats() -> Stats:
    cfg = current_settings()
    active, vectors = active_index(session=db.session, settings=cfg)
    embedder = embedder_for(cfg, active.model_version)
    return {
        "products": db.session.scalar(select(func.count()).select_from(Product)) or 0,
        "images": photo_status_counts(session=db.session),
        "index": {
            "backend": "qdrant-edge" if cfg.embedded_index else "qdrant-server",
            "collection": active.name,
            "points": vectors.count(),
            "warm": vectors.ready,
        },
        "model": model_info(embedder.info),
        "tasks": "in-process" if cfg.tasks_in_process else "celery",
    }


def model_info(info: EmbedderInfo) -> ModelInfo:
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
