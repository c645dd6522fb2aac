"""The process-wide embedder for the active model version, loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from backend.config import Settings
from backend.extensions import db
from backend.models import ModelVersion
from ml.checkpoint import embedder_from_checkpoint
from ml.embedder import Embedder

_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def active_model() -> ModelVersion | None:
    return db.session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))


def current_embedder(settings: Settings) -> Embedder:
    """The embedder of the active model, or the deterministic untrained network when none is active."""
    active = active_model()
    key = active.version if active else f"untrained:{settings.untrained_seed}:{settings.embed_image_size}"
    with _lock:
        embedder = _embedders.get(key)
        if embedder is None:
            if active is not None:
                embedder = embedder_from_checkpoint(
                    Path(active.path), device=settings.device.value, batch_size=settings.embed_batch_size
                )
            else:
                embedder = Embedder.untrained(
                    seed=settings.untrained_seed,
                    image_size=settings.embed_image_size,
                    device=settings.device.value,
                    batch_size=settings.embed_batch_size,
                )
            _embedders[key] = embedder
        return embedder
