"""What the service is doing: products, photos by status, the index and the model that embeds. One shape for
`/api/v1/stats`, the status page and `lookalike stats`."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, NotRequired, TypedDict, cast

from sqlalchemy import func, select

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import Product
from backend.db.products import photo_status_counts
from backend.index import IndexUnavailable
from backend.services.experiments import current_experiment
from backend.serving.active import active_collection, index_of
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
    points: int | None  # None: the index could not be read (`error` says why)
    warm: bool
    error: NotRequired[str]


class ArmInfo(TypedDict):
    name: str
    model_version: str
    weight: int
    collection: str


class ExperimentInfo(TypedDict):
    id: int
    arms: list[ArmInfo]
    started_at: str


class Stats(TypedDict):
    """The one shape of the statistics: `/api/v1/stats`, the status page and `lookalike stats`."""

    products: int
    images: dict[str, int]
    index: IndexInfo
    model: ModelInfo
    tasks: str
    experiment: ExperimentInfo | None  # the model A/B test running, if one is


def experiment_info(session: DbSession) -> ExperimentInfo | None:
    running = current_experiment(session=session)
    return None if running is None else cast(ExperimentInfo, asdict(running))


def collect_stats(*, session: DbSession, settings: Settings, index_errors: bool = False) -> Stats:
    """IndexUnavailable when the index cannot be read, unless `index_errors`: then the rest, and why (a command
    beside a `lookalike serve` that holds the embedded store)."""
    active = active_collection(session=session, settings=settings)
    index: IndexInfo = {
        "backend": "qdrant-edge" if settings.embedded_index else "qdrant-server",
        "collection": active.name,
        "points": None,
        "warm": False,
    }
    try:
        vectors = index_of(settings, active)
        index["points"], index["warm"] = vectors.count(), vectors.ready
    except IndexUnavailable as exc:
        if not index_errors:
            raise
        index["error"] = str(exc)
    return {
        "products": session.scalar(select(func.count()).select_from(Product)) or 0,
        "images": photo_status_counts(session=session),
        "index": index,
        "model": model_info(embedder_for(settings, active.model_version).info),
        "tasks": "in-process" if settings.tasks_in_process else "celery",
        "experiment": experiment_info(session),
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
