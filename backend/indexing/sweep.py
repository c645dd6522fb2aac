"""The sweep: finds photos a crash, a broker restart or a store outage left behind, and repairs drift.

It runs every minute from Celery beat and on demand (`lookalike sweep`). Each step is safe to run
twice and at any moment: re-enqueued photos a worker already finished are skipped by it.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import (
    CollectionState,
    FailureKind,
    FeedImport,
    ImageStatus,
    ImportState,
    IndexCollection,
    Product,
    ProductImage,
)
from backend.db.photos import set_pending
from backend.domain.photos import MediaStorage
from backend.index import IndexBusy, IndexUnavailable, VectorIndex, store_for
from backend.index.base import RELEASE_GRACE_S
from backend.indexing.embed import claim_is_stale
from backend.indexing.mirror import embed_into
from backend.services.events import prune_events
from backend.serving.active import active_index, experiment_indexes
from backend.serving.embedders import UnknownModel

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    requeued_pending: int = 0  # pending too long (their task was lost) and nobody holds them
    retried_failed: int = 0  # failed for a transient reason: the store or the database was away
    missing_points: int = 0  # indexed by the database, absent from the index: embedded again
    other_model: int = 0  # marked indexed by another model than the active collection's: embedded again
    orphan_points: int = 0  # points of photos that no longer exist: deleted
    payloads_fixed: int = 0  # products whose points carried stale category, brand or price
    orphan_media: int = 0  # media files no row owns, past the grace: removed
    dropped_collections: list[str] = field(default_factory=list)
    dead_imports: list[int] = field(default_factory=list)  # running or queued in a process that died: failed
    dead_builds: list[str] = field(default_factory=list)  # built by a process that died: retired, then dropped
    events_pruned: int = 0  # shopper events past EVENTS_RETENTION_DAYS: deleted
    arm_missing: int = 0  # indexed photos a running experiment's collection lacked: embedded into it
    arm_orphans: int = 0  # points in an experiment's collection of photos that no longer exist: deleted
    optimized: bool = False
    index_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_sweep(
    *,
    session: DbSession,
    settings: Settings,
    enqueue: Callable[[list[int]], None],
    full: bool = False,
    lost_before: datetime | None = None,
) -> SweepReport:
    """The quick sweep (every minute): lost and transiently failed photos, replaced collections, the Edge graph.

    The full sweep (hourly, and `lookalike sweep`) also compares the database with every point of the
    active collection: missing, orphan and other-model points, and payloads.

    `lost_before`: in-process tasks (the embedded default) do not outlive their process, so a photo
    enqueued before this process started is lost whatever PENDING_STALE_S says.
    """
    report = SweepReport()
    now = datetime.now(UTC)

    # 1. Pending and not held by a live worker, and either claimed by a worker that died (its process is gone,
    # or its lease ran out: it was embedding them) or enqueued too long ago: the task carrying them was lost.
    stale_before = now - timedelta(seconds=settings.pending_stale_s)
    if lost_before is not None:
        stale_before = max(stale_before, lost_before)
    # Only the claimed (few: being embedded now) and the stale reach Python: not a bulk import's whole backlog.
    rows = session.execute(
        select(ProductImage.id, ProductImage.claimed_by, ProductImage.claimed_until, ProductImage.enqueued_at).where(
            ProductImage.status == ImageStatus.pending,
            or_(
                ProductImage.claimed_by.is_not(None),
                ProductImage.enqueued_at.is_(None),
                ProductImage.enqueued_at < stale_before,
            ),
        )
    ).all()
    lost = []
    for image_id, by, until, enqueued_at in rows:
        if by is not None and until is not None:
            dead = until < now or claim_is_stale(by)
        else:
            dead = enqueued_at is None or enqueued_at < stale_before
        if dead:
            lost.append(image_id)
    # 2. Failed for a transient reason: try again.
    retry = list(
        session.scalars(
            select(ProductImage.id).where(
                ProductImage.status == ImageStatus.failed,
                ProductImage.failure_kind == FailureKind.transient,
            )
        )
    )
    if retry:
        set_pending(session, retry)
    report.requeued_pending, report.retried_failed = len(lost), len(retry)

    # 3. Drift between the database and the active collection.
    requeue_more: list[int] = []
    try:
        active, index = active_index(session=session, settings=settings)
        if full:
            requeue_more = _drift(session, active.model_version, index, report, settings.attribute_keys)
        report.optimized = index.optimize_if_needed()
        arms = experiment_indexes(session=session, settings=settings)
        for _, _, arm in arms:
            arm.optimize_if_needed()  # the photos mirrored into a running experiment's collections
        if full:
            _arm_drift(session, settings, arms, report)
    except (IndexUnavailable, UnknownModel) as exc:
        session.rollback()
        report.index_error = str(exc)
        log.warning("sweep: drift not checked: %s", exc)
    _resolve_dead_work(session, settings, report, lost_before)
    _drop_replaced(session, settings, report)
    if full:
        report.orphan_media = _remove_orphan_media(session, settings)
        report.events_pruned = prune_events(session=session, retention_days=settings.events_retention_days)

    todo = sorted(set(lost + retry + requeue_more))
    if todo:
        enqueue(todo)
    if any(
        (
            report.requeued_pending,
            report.retried_failed,
            report.missing_points,
            report.orphan_points,
            report.dead_imports,
            report.dead_builds,
            report.arm_missing,
            report.arm_orphans,
        )
    ):
        log.warning("sweep repaired: %s", report.as_dict())
    return report


def _drift(
    session: DbSession, version: str, index: VectorIndex, report: SweepReport, attribute_keys: Sequence[str]
) -> list[int]:
    """Compare the database with every point; fix what differs. Returns the photos to embed again."""
    in_index = index.ids()
    indexed = select(ProductImage.id, ProductImage.model_version).where(ProductImage.status == ImageStatus.indexed)
    known = {image_id: model for image_id, model in session.execute(indexed)}
    all_ids = set(session.scalars(select(ProductImage.id)))
    orphans = sorted(in_index - all_ids)
    if orphans:
        index.delete(orphans)
    missing = sorted(i for i, v in known.items() if v == version and i not in in_index)
    other = sorted(i for i, v in known.items() if v != version)
    if missing or other:
        set_pending(session, missing + other)
    report.orphan_points, report.missing_points, report.other_model = len(orphans), len(missing), len(other)
    report.payloads_fixed = _fix_payloads(session, index, attribute_keys)
    return missing + other


def _arm_drift(
    session: DbSession, settings: Settings, arms: Sequence[tuple[str, str, VectorIndex]], report: SweepReport
) -> None:
    """A running experiment's collections against the database: the points of photos that are gone are deleted,
    photos indexed into the active collection that an arm's lacks (its mirror failed) are embedded into it, and
    stale payloads are rewritten."""
    for _, version, index in arms:
        in_index = index.ids()
        existing = set(session.scalars(select(ProductImage.id)))
        indexed = set(session.scalars(select(ProductImage.id).where(ProductImage.status == ImageStatus.indexed)))
        session.rollback()
        orphans = sorted(in_index - existing)
        if orphans:
            index.delete(orphans)
        report.arm_orphans += len(orphans)
        report.arm_missing += embed_into(session, settings, version, index, sorted(indexed - in_index))
        report.payloads_fixed += _fix_payloads(session, index, settings.attribute_keys)


def _dead(runner: str | None, moved: datetime | None, now: datetime, settings: Settings) -> str | None:
    """Why the work `runner` does is dead, or None: its process is gone (on this host), or it has not moved for
    DEAD_WORK_S (a process on another host). Never within DEAD_WORK_GRACE_S of its last move."""
    if moved is not None and now - moved < timedelta(seconds=settings.dead_work_grace_s):
        return None
    if runner is not None and claim_is_stale(runner):
        return f"the process running it stopped ({runner.rsplit(':', 2)[0]})"
    if moved is not None and now - moved > timedelta(seconds=settings.dead_work_s):
        return f"no progress for {int((now - moved).total_seconds())} s: its process stopped"
    return None


def _resolve_dead_work(
    session: DbSession, settings: Settings, report: SweepReport, lost_before: datetime | None
) -> None:
    """Imports and reindex builds whose process died (killed with the embedded server, a worker gone): an import
    becomes failed with the reason (a feed is idempotent: send it again), a build is retired and then dropped
    with its shard or points by _drop_replaced."""
    now = datetime.now(UTC)
    for record in session.scalars(
        select(FeedImport).where(FeedImport.state.in_([ImportState.running, ImportState.queued]))
    ):
        if record.state == ImportState.queued:
            # An in-process import queued before this process started died with the process that queued it.
            lost = settings.tasks_in_process and lost_before is not None and record.created_at < lost_before
            reason = "queued in a process that stopped before running it" if lost else None
        else:
            reason = _dead(record.runner, record.progress_at or record.started_at, now, settings)
        if reason is not None:
            record.state, record.finished_at = ImportState.failed, now
            record.error = f"{reason}; nothing after row {record.rows_done} was imported: send the feed again"
            report.dead_imports.append(record.id)
            shutil.rmtree(settings.imports_dir / str(record.id), ignore_errors=True)  # its feed and zip
    for build in session.scalars(select(IndexCollection).where(IndexCollection.state == CollectionState.building)):
        reason = _dead(build.builder, build.progress_at or build.created_at, now, settings)
        if reason is not None:
            log.warning("sweep: the build of %s is dead (%s): dropping it", build.name, reason)
            build.state, build.switched_at = CollectionState.retired, None
            report.dead_builds.append(build.name)
    session.commit()


def _drop_replaced(session: DbSession, settings: Settings, report: SweepReport) -> None:
    """Collections a reindex replaced, once no process holds them; ours that no row knows (a build that
    died, a collection re-created by a late writer) likewise."""
    known_names = set(session.scalars(select(IndexCollection.name)))
    # Not before the grace: queries that read a retired name just before the switch may still use it.
    settled = datetime.now(UTC) - timedelta(seconds=RELEASE_GRACE_S)
    retired = list(
        session.scalars(
            select(IndexCollection.name).where(
                IndexCollection.state == CollectionState.retired,
                or_(IndexCollection.switched_at.is_(None), IndexCollection.switched_at <= settled),
            )
        )
    )
    store = store_for(settings)
    try:
        prefix = f"{settings.qdrant_collection}-"
        retired += [n for n in store.list() if n.startswith(prefix) and n not in known_names]
    except IndexUnavailable as exc:
        log.warning("sweep: cannot list collections: %s", exc)
    for name in retired:
        try:
            store.drop(name)
        except IndexBusy:
            continue
        except IndexUnavailable as exc:
            log.warning("sweep: cannot drop %s: %s", name, exc)
            continue
        session.execute(delete(IndexCollection).where(IndexCollection.name == name))
        report.dropped_collections.append(name)
    session.commit()


def _remove_orphan_media(session: DbSession, settings: Settings) -> int:
    """Files under MEDIA_ROOT (photos and their thumbnails) that no photo row names, older than
    MEDIA_ORPHAN_GRACE_S (a request that wrote its file and died before its commit; an unfinished write).
    A file of a request in flight is younger."""
    known = set(session.scalars(select(ProductImage.stored_name)))  # read before listing: newer files are young
    session.rollback()
    cutoff = time.time() - settings.media_orphan_grace_s
    removed = 0
    storage = MediaStorage(settings.media_root)
    stems = {name.split(".")[0] for name in known}
    photos = ((path, name not in known) for name, path in storage.files())
    thumbnails = ((path, stem not in stems) for stem, path in storage.thumbnails())
    for path, orphan in itertools.chain(photos, thumbnails):
        try:
            if orphan and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue  # deleted meanwhile
    if removed:
        log.warning("sweep: removed %d media files (photos and thumbnails) that no photo owns", removed)
    return removed


def _fix_payloads(session: DbSession, index: VectorIndex, attribute_keys: Sequence[str]) -> int:
    """Compare every point's category, brand, price and filter attributes with its product; rewrite the products
    that differ (also after FILTER_ATTRIBUTES changed)."""
    stored = index.payloads()
    products = {p.id: p.index_payload(attribute_keys) for p in session.scalars(select(Product))}
    wrong: set[int] = set()
    for payload in stored.values():
        product_id = payload.get("product_id")
        truth = products.get(product_id) if isinstance(product_id, int) else None
        if truth is not None and any(payload.get(k) != truth[k] for k in ("category", "brand", "price", "attrs")):
            wrong.add(truth["product_id"])
    for product_id in sorted(wrong):
        index.set_product_payload(product_id, products[product_id])
    return len(wrong)
