"""Photos into the collections of a running experiment's arms, so that every arm answers from the whole catalog.

The active collection's photos are tracked row by row (status, model version); an arm's collection is not: a
photo indexed into the active one is embedded into each arm's collection right after (`mirror_photos`), and the
full sweep embeds what an arm lacks (`embed_into`) and deletes what it holds of photos that are gone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy.exc import OperationalError

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.index import IndexUnavailable, VectorIndex
from backend.indexing.embed import embed_stored
from backend.serving.active import experiment_indexes
from backend.serving.embedders import UnknownModel, embedder_for

log = logging.getLogger(__name__)


def embed_into(
    session: DbSession, settings: Settings, version: str, index: VectorIndex, image_ids: Sequence[int]
) -> int:
    """Embed the photos of `image_ids` that still exist with `version` and upsert them into `index`, in batches;
    how many were written."""
    if not image_ids:
        return 0
    embedder = embedder_for(settings, version)
    step, ids = settings.embed_batch_size, sorted(image_ids)
    written = 0
    for start in range(0, len(ids), step):
        # An unreadable photo is left out: the active collection's pipeline records why.
        written += len(embed_stored(session, settings, version, index, embedder, ids[start : start + step]))
    return written


def mirror_photos(*, session: DbSession, settings: Settings, image_ids: Sequence[int]) -> int:
    """After photos were indexed into the active collection (and committed): embed them into each experiment
    arm's collection too. The arms are read here, after that commit: an experiment that started meanwhile either
    caught these photos up itself or is seen here. A failure is logged, and the full sweep embeds what an arm
    lacks; the number of points written is returned."""
    if not image_ids:
        return 0
    written = 0
    try:
        for name, version, index in experiment_indexes(session=session, settings=settings):
            written += embed_into(session, settings, version, index, image_ids)
            log.debug("mirrored %d photo(s) into the experiment collection %s", len(image_ids), name)
    except (IndexUnavailable, UnknownModel, OperationalError) as exc:
        session.rollback()
        log.warning("photos %s not mirrored into the experiment's collections (the sweep does it): %s", image_ids, exc)
    return written
