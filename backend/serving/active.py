"""Which collection is live: one per model version and build, the database row in state `active` is the switch.

Queries and workers read the active row (its name and model version together), so a query vector and
the collection it searches always come from the same model, and a reindex switches all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import CollectionState, IndexCollection, ModelVersion
from backend.index import IndexBusy, VectorIndex, store_for
from backend.serving.embedders import UNTRAINED, configured_default, is_untrained
from ml.versions import builtin_arch


@dataclass(frozen=True)
class Active:
    name: str
    model_version: str


def default_version(*, session: DbSession, settings: Settings) -> str:
    """The registered model marked active, else DEFAULT_MODEL (a built-in ImageNet-pretrained model)."""
    model = session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
    return model.version if model else configured_default(settings)


def default_model_note(*, session: DbSession, settings: Settings) -> str | None:
    """What to do when the live collection was built by another built-in model than DEFAULT_MODEL, or by the
    untrained network (an install from before pretrained models). The move is a reindex, so that answers never
    mix two models; a fine-tuned model an admin activated is left alone."""
    live = active_collection(session=session, settings=settings)
    if settings.default_model in (UNTRAINED, live.model_version):
        return None
    if is_untrained(settings, live.model_version):
        built_by = "the untrained network"
    elif builtin_arch(live.model_version) is not None:
        built_by = live.model_version
    else:
        return None
    return (
        f"the live collection {live.name} was built by {built_by}, DEFAULT_MODEL is {settings.default_model}: run"
        f" `lookalike model activate {settings.default_model}` to reindex every photo with it"
        " (queries keep answering from the current collection until the switch)"
    )


def new_collection_name(settings: Settings, version: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{settings.qdrant_collection}-{version}-{stamp}"


def active_collection(*, session: DbSession, settings: Settings) -> Active:
    """The active collection; the first call of a new installation creates it for the default model."""
    row = session.scalar(select(IndexCollection).where(IndexCollection.state == CollectionState.active))
    if row is None:
        version = default_version(session=session, settings=settings)
        row = IndexCollection(
            name=new_collection_name(settings, version),
            model_version=version,
            state=CollectionState.active,
            switched_at=datetime.now(UTC),
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()
            row = session.scalar(select(IndexCollection).where(IndexCollection.state == CollectionState.active))
            assert row is not None
    return Active(row.name, row.model_version)


def index_of(settings: Settings, active: Active) -> VectorIndex:
    """The index of a collection read as active, opened once per process; replaced Edge shards are let go.

    Callers that read `active` earlier pass it here rather than read it again: a switch in between
    would pair one model's vectors with another model's collection.
    """
    store = store_for(settings)
    index = store.open(active.name)
    store.release_others(keep=active.name)
    return index


def active_index(*, session: DbSession, settings: Settings) -> tuple[Active, VectorIndex]:
    """The active collection and its index."""
    active = active_collection(session=session, settings=settings)
    return active, index_of(settings, active)


def store_held_elsewhere(*, session: DbSession, settings: Settings) -> bool:
    """Whether another process holds the embedded store (it is locked to one process); never on the server."""
    try:
        active_index(session=session, settings=settings)
    except IndexBusy:
        return True
    return False


def building_indexes(*, session: DbSession, settings: Settings) -> list[VectorIndex]:
    """On the server, the collections a reindex is building: deletes and payload changes go there too, so a
    change that lands after the reindex's own pass over the database still reaches the next collection.

    An Edge shard being built is held by the reindex's process; there the full sweep repairs such drift.
    """
    store = store_for(settings)
    if not store.builds_visible:
        return []
    names = session.scalars(select(IndexCollection.name).where(IndexCollection.state == CollectionState.building))
    return [store.open(name) for name in names]
