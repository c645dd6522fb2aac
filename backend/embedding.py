"""The process-wide embedder of a model version, loaded once per process."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import select

from backend.config import Settings
from backend.extensions import db
from backend.models import ModelVersion
from ml.checkpoint import embedder_from_checkpoint
from ml.embedder import Embedder, untrained_version

_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


class UnknownModel(LookupError):
    """A collection names a model version this installation cannot load."""


def embedder_for(settings: Settings, version: str) -> Embedder:
    """The embedder of `version`: a registered checkpoint, or the deterministic untrained network."""
    with _lock:
        embedder = _embedders.get(version)
        if embedder is not None:
            return embedder
        if version == untrained_version(settings.untrained_seed, settings.embed_image_size):
            embedder = Embedder.untrained(
                seed=settings.untrained_seed,
                image_size=settings.embed_image_size,
                device=settings.device.value,
                batch_size=settings.embed_batch_size,
            )
        else:
            model = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
            if model is None:
                raise UnknownModel(
                    f"model {version} is not registered here, and it is not the untrained network of"
                    f" UNTRAINED_SEED={settings.untrained_seed}, EMBED_IMAGE_SIZE={settings.embed_image_size}"
                )
            embedder = embedder_from_checkpoint(
                Path(model.path), device=settings.device.value, batch_size=settings.embed_batch_size
            )
        _embedders[version] = embedder
        return embedder
