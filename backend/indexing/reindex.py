"""Reindex: embed every photo with a model into a new collection, then switch to it in one transaction.

Queries go on against the active collection all along; they see the new one only once it holds
every photo, and never a mix of two models. The old collection is dropped once no process holds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import delete, select, update

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import (
    CollectionState,
    FailureKind,
    ImageStatus,
    IndexCollection,
    ModelVersion,
    Product,
    ProductImage,
)
from backend.db.photos import mark_indexed, update_photos
from backend.index import IndexBusy, IndexUnavailable, VectorIndex, store_for
from backend.indexing.embed import embed_stored, worker_identity
from backend.serving.active import LIVE, active_collection, new_collection_name, note_switch
from backend.serving.embedders import embedder_for

log = logging.getLogger(__name__)


@dataclass
class ReindexReport:
    collection: str
    model_version: str
    previous: str
    embedded: int = 0
    unreadable: int = 0
    caught_up: int = 0  # photos that arrived during the build: enqueued for the new collection
    orphans_removed: int = 0
    dropped_previous: bool = False


@dataclass
class Built:
    """A collection filled with every photo by one model, still in state `building`."""

    name: str
    model_version: str
    index: VectorIndex
    done: set[int] = field(default_factory=set)  # the photos it holds
    unreadable: dict[int, str] = field(default_factory=dict)
    orphans_removed: int = 0


def build_collection(
    *,
    session: DbSession,
    settings: Settings,
    version: str,
    progress: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
) -> Built:
    """Embed every photo with `version` into a new collection (state `building`, its progress on its row); on
    any failure the collection and its row are gone again."""
    embedder = embedder_for(settings, version)  # UnknownModel before anything is built
    name = new_collection_name(settings, version)
    session.add(
        IndexCollection(
            name=name,
            model_version=version,
            state=CollectionState.building,
            progress_at=datetime.now(UTC),
            builder=worker_identity(f"reindex-{name}"),
        )
    )
    session.commit()
    started = datetime.now(UTC)
    store = store_for(settings)
    ids = list(session.scalars(select(ProductImage.id).order_by(ProductImage.id)))
    try:  # a query meanwhile lets go of other collections, never of this one; its storage chosen for the catalog
        index = store.open_for_build(name, photos=len(ids))
    except BaseException:
        discard_build(session, settings, name)
        raise
    built = Built(name, version, index)
    try:
        _record_progress(session, name, total=len(ids), done=0)
        on_total(len(ids))
        step = settings.embed_batch_size
        for start in range(0, len(ids), step):
            batch = ids[start : start + step]
            built.done.update(
                embed_stored(session, settings, version, index, embedder, batch, built.unreadable.__setitem__)
            )
            _record_progress(session, name, total=len(ids), done=min(start + step, len(ids)))
            progress(len(ids[start : start + step]))
        index.optimize()  # build the graph before queries arrive
        built.orphans_removed = _tidy(session, index, built.done, started, settings.attribute_keys)
    except BaseException:
        discard_build(session, settings, name)
        raise
    return built


def discard_build(session: DbSession, settings: Settings, name: str) -> None:
    """Drop a build that will not go live, and its row."""
    session.rollback()
    store_for(settings).drop(name)
    session.execute(delete(IndexCollection).where(IndexCollection.name == name))
    session.commit()


def hand_over(settings: Settings, built: Built, prepare: Callable[[str, VectorIndex], None] | None) -> None:
    """Before a build goes live: `prepare` readies it where this process answers the queries (it stays open),
    else it is closed for the serving process to open."""
    if prepare is None:
        store_for(settings).close_collection(built.name)  # Edge: lets go of the shard's lock for the serving process
    else:  # queries find it open and ready: reopening an Edge shard holds the GIL while it loads, and
        prepare(built.name, built.index)  # stalled every request for a second (bench/soak.py)


def reindex(
    *,
    session: DbSession,
    settings: Settings,
    version: str | None = None,
    enqueue: Callable[[list[int]], None],
    progress: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
    drop_wait_s: float = 120.0,
    prepare: Callable[[str, VectorIndex], None] | None = None,
) -> ReindexReport:
    """`prepare`: given where this process answers the queries (the embedded server's own reindex), readies the
    new collection for them before the switch, and the collection stays open; otherwise it is closed before the
    switch, for the serving process to open."""
    previous = active_collection(session=session, settings=settings)
    version = version or previous.model_version
    built = build_collection(session=session, settings=settings, version=version, progress=progress, on_total=on_total)
    name, store = built.name, store_for(settings)
    report = ReindexReport(collection=name, model_version=version, previous=previous.name)
    report.orphans_removed = built.orphans_removed
    report.embedded, report.unreadable = len(built.done), len(built.unreadable)
    try:
        hand_over(settings, built, prepare)
        report.caught_up = switch_to(session, name, version, built.done, built.unreadable, enqueue)
    except BaseException:
        store.close_collection(name)  # the sweep drops the building row and its shard
        raise
    note_switch(settings)
    point_alias(settings, name)
    try:
        # Queries that read the old name just before the switch finish on it first.
        store.drop_replaced(previous.name, wait_s=drop_wait_s)
        session.execute(delete(IndexCollection).where(IndexCollection.name == previous.name))
        session.commit()
        report.dropped_previous = True
    except IndexBusy:
        log.warning("reindex: %s is still open elsewhere; the sweep drops it once it is free", previous.name)
    return report


def point_alias(settings: Settings, name: str) -> None:
    """The store's alias (QDRANT_COLLECTION) to the collection now active, where the store has aliases."""
    try:
        store_for(settings).point_alias(settings.qdrant_collection, name)
    except IndexUnavailable as exc:  # queries read the active collection from the database, not the alias
        log.warning("alias %s not moved to %s: %s", settings.qdrant_collection, name, exc)


def lock_live(session: DbSession) -> list[IndexCollection]:
    """The live collections' rows, locked until the commit: the same rows a finishing worker reads (FOR SHARE),
    so that it sees either the state before a switch or the one after."""
    return list(
        session.scalars(
            select(IndexCollection)
            .where(IndexCollection.state.in_(LIVE))
            .order_by(IndexCollection.name)
            .with_for_update()
        )
    )


def _record_progress(session: DbSession, name: str, *, total: int, done: int) -> None:
    """How far the build is, on its row: pages and other processes read it there."""
    session.execute(
        update(IndexCollection)
        .where(IndexCollection.name == name)
        .values(photos_total=total, photos_done=done, progress_at=datetime.now(UTC))
    )
    session.commit()


def _tidy(
    session: DbSession, index: VectorIndex, done: set[int], started: datetime, attribute_keys: Sequence[str]
) -> int:
    """Before the switch: drop points of photos deleted during the build, refresh payloads changed meanwhile."""
    existing = set(session.scalars(select(ProductImage.id)))
    gone = sorted(done - existing)
    if gone:
        index.delete(gone)
        done.difference_update(gone)
    for product in session.scalars(select(Product).where(Product.updated_at >= started)):
        index.set_product_payload(product.id, product.index_payload(attribute_keys))
    session.rollback()
    return len(gone)


def switch_to(
    session: DbSession,
    name: str,
    version: str,
    done: set[int],
    unreadable: dict[int, str],
    enqueue: Callable[[list[int]], None],
) -> int:
    """One transaction: retire the active collection, activate the new one and its model, mark the photos; the
    photos it lacks are enqueued for it after the commit (their number is returned)."""
    now = datetime.now(UTC)
    lock_live(session)
    session.execute(
        update(IndexCollection)
        .where(IndexCollection.state == CollectionState.active)
        .values(state=CollectionState.retired, switched_at=now)  # the sweep drops it after the grace
    )
    session.execute(
        update(IndexCollection)
        .where(IndexCollection.name == name)
        .values(state=CollectionState.active, switched_at=now)
    )
    session.execute(update(ModelVersion).values(active=ModelVersion.version == version))
    mark_indexed(session, sorted(done), version)
    for image_id, reason in unreadable.items():
        update_photos(
            session, [image_id], status=ImageStatus.failed, error=reason[:1000], failure_kind=FailureKind.permanent
        )
    # Photos not in the new collection (they arrived during the build): embed them with the new model.
    # (Whatever their status says: one indexed meanwhile went into the old collection.)
    behind = [
        i
        for i in session.scalars(select(ProductImage.id).where(ProductImage.status != ImageStatus.failed))
        if i not in done
    ]
    update_photos(session, behind, status=ImageStatus.pending)
    session.commit()
    enqueue(behind)
    return len(behind)
