"""Embed photos by id and mirror them into the vector index; the database records the outcome.

A worker first claims the photos in one conditional UPDATE (a lease, with the attempt counted), so
two deliveries of one task never embed a photo twice at the same time, and a photo whose worker
died is found again: its claim outlives nobody. Photos whose last attempt did not end (the process
died) are embedded one at a time, so a photo that kills its worker takes only itself down, and
after MAX_ATTEMPTS such deaths it ends `failed` without being tried again. `attempts` counts the
runs on a photo that did not end: it goes back to 0 when the photo is indexed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, not_, or_, select, update
from sqlalchemy.orm import joinedload

from backend.active_index import Active
from backend.extensions import DbSession
from backend.index import IndexPoint, VectorIndex
from backend.media import MediaStorage, open_image
from backend.models import CollectionState, FailureKind, ImageStatus, IndexCollection, ProductImage
from ml.embedder import Embedder

log = logging.getLogger(__name__)
HOST = socket.gethostname()[:60]


@dataclass
class IndexReport:
    indexed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # already indexed by this model
    busy: list[int] = field(default_factory=list)  # another live worker holds them
    failed: dict[int, str] = field(default_factory=dict)
    vanished: list[int] = field(default_factory=list)  # deleted before or while we embedded them
    requeue: list[int] = field(default_factory=list)  # a reindex switched the collection meanwhile
    charged: list[int] = field(default_factory=list)  # attempts counted by this run

    def counts(self) -> dict[str, int]:
        return {
            "indexed": len(self.indexed),
            "skipped": len(self.skipped),
            "busy": len(self.busy),
            "failed": len(self.failed),
            "vanished": len(self.vanished),
            "requeued": len(self.requeue),
        }


def worker_identity(token: str) -> str:
    """Who claims: host, process, thread (eager tasks run on API threads), and the task."""
    return f"{HOST}:{os.getpid()}:{threading.get_ident()}:{token}"[:160]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_is_stale(claimed_by: str) -> bool:
    """A claim made on this host by a dead process, or by this very thread in an earlier task that did not end."""
    host, pid, thread, *_ = ([*claimed_by.split(":"), "", "", ""])[:4]
    if host != HOST or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return thread == str(threading.get_ident())
    return not _pid_alive(int(pid))


def point_payload(image: ProductImage, model_version: str) -> dict[str, object]:
    return {**image.product.index_payload(), "image_id": image.id, "model_version": model_version}


@dataclass(frozen=True)
class Claimed:
    id: int
    stored_name: str
    attempts: int
    payload: dict[str, object]


def claim(*, session: DbSession, image_ids: Sequence[int], version: str, me: str, lease_s: float) -> list[Claimed]:
    """Claim the photos that still need this model's vector, in one conditional UPDATE (so atomic)."""
    now = datetime.now(UTC)
    ids = list(image_ids)
    held = session.execute(
        select(ProductImage.claimed_by).where(
            ProductImage.id.in_(ids), ProductImage.claimed_by.is_not(None), ProductImage.claimed_until > now
        )
    ).scalars()
    stale = sorted({by for by in held if by and claim_is_stale(by)})
    session.execute(
        update(ProductImage)
        .where(
            ProductImage.id.in_(ids),
            or_(ProductImage.status != ImageStatus.indexed.value, ProductImage.model_version.is_distinct_from(version)),
            # A photo that failed for a reason of its own stays failed until someone changes it.
            not_(
                and_(
                    ProductImage.status == ImageStatus.failed.value,
                    ProductImage.failure_kind == FailureKind.permanent.value,
                )
            ),
            or_(
                ProductImage.claimed_by.is_(None),
                ProductImage.claimed_until < now,
                ProductImage.claimed_by.in_(stale),
            ),
        )
        .values(
            claimed_by=me,
            claimed_until=now + timedelta(seconds=lease_s),
            status=ImageStatus.pending.value,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    rows = session.scalars(
        select(ProductImage)
        .where(ProductImage.id.in_(ids), ProductImage.claimed_by == me)
        .options(joinedload(ProductImage.product))
        .order_by(ProductImage.id)
    ).all()
    # Plain values: a row deleted by the API later must not break the attribute loads of this run.
    claimed = [Claimed(row.id, row.stored_name, row.attempts, point_payload(row, version)) for row in rows]
    session.rollback()
    return claimed


def release(*, session: DbSession, me: str, charged: Sequence[int] = ()) -> None:
    """Give back what `me` still holds after an attempt that ended without a result (not the photos' fault)."""
    session.execute(
        update(ProductImage)
        .where(
            ProductImage.claimed_by == me,
            ProductImage.status == ImageStatus.pending.value,
            ProductImage.id.in_(list(charged)),
        )
        .values(attempts=ProductImage.attempts - 1)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(ProductImage)
        .where(ProductImage.claimed_by == me)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _charge(session: DbSession, rows: Sequence[Claimed], report: IndexReport) -> None:
    """Count an attempt on these photos, committed before any work: a photo that kills the process is counted."""
    ids = [row.id for row in rows]
    session.execute(
        update(ProductImage)
        .where(ProductImage.id.in_(ids))
        .values(attempts=ProductImage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    report.charged.extend(ids)


def index_images(
    *,
    session: DbSession,
    active: Active,
    index: Callable[[], VectorIndex],
    embedder: Callable[[], Embedder],
    storage: MediaStorage,
    image_ids: Sequence[int],
    max_pixels: int,
    me: str,
    lease_s: float,
    max_attempts: int,
) -> IndexReport:
    """Embed and upsert the given photos into the active collection; idempotent (point id = image id).

    `index` and `embedder` are called only when there is work: a duplicate delivery touches neither.
    On any exception the claims are released (the attempts of this run given back) and it propagates.
    """
    report = IndexReport()
    rows = claim(session=session, image_ids=image_ids, version=active.model_version, me=me, lease_s=lease_s)
    try:
        _classify_unclaimed(session, image_ids, {row.id for row in rows}, report)
        fresh = [row for row in rows if row.attempts == 0]
        # The last attempt on these never ended (the process died): maybe they kill it. One at a time.
        suspects = [row for row in rows if row.attempts > 0]
        if fresh:
            _charge(session, fresh, report)
            _embed_group(session, active, index, embedder, storage, fresh, max_pixels, report)
        for row in suspects:
            if row.attempts >= max_attempts:
                reason = (
                    f"gave up after {row.attempts} attempts: the worker process died each time it embedded this photo"
                )
                _fail_ids(session, [row.id], reason, FailureKind.permanent)
                report.failed[row.id] = reason
                continue
            _charge(session, [row], report)
            _embed_group(session, active, index, embedder, storage, [row], max_pixels, report)
    except BaseException:
        try:
            session.rollback()
            release(session=session, me=me, charged=report.charged)
        except Exception:  # the database is away too: the claims lapse at the end of their lease
            log.warning("could not release the claims of %s", me, exc_info=True)
        raise
    return report


def _classify_unclaimed(session: DbSession, image_ids: Sequence[int], claimed: set[int], report: IndexReport) -> None:
    unclaimed = [i for i in image_ids if i not in claimed]
    if not unclaimed:
        return
    query = select(ProductImage.id, ProductImage.status).where(ProductImage.id.in_(unclaimed))
    found = {image_id: status for image_id, status in session.execute(query)}
    for image_id in unclaimed:
        if image_id not in found:
            report.vanished.append(image_id)
        elif found[image_id] != ImageStatus.pending.value:
            report.skipped.append(image_id)  # indexed, or failed for a reason of its own
        else:
            report.busy.append(image_id)  # another live worker holds it


def _embed_group(
    session: DbSession,
    active: Active,
    index_of: Callable[[], VectorIndex],
    embedder_of: Callable[[], Embedder],
    storage: MediaStorage,
    rows: list[Claimed],
    max_pixels: int,
    report: IndexReport,
) -> None:
    decoded, ready = [], []
    for row in rows:
        try:
            decoded.append(open_image(storage.read(row.stored_name), max_pixels))
            ready.append(row)
        except Exception as exc:  # any unreadable photo is this photo's failure, not the batch's
            reason = f"cannot read photo: {type(exc).__name__}: {exc}"
            _fail_ids(session, [row.id], reason, FailureKind.permanent)
            report.failed[row.id] = reason
    if not ready:
        return
    version = active.model_version
    embedder = embedder_of()
    assert embedder.model_version == version, "the embedder must be the active collection's model"
    vectors = embedder.embed(decoded)
    index = index_of()
    index.upsert([IndexPoint(row.id, vectors[i], row.payload) for i, row in enumerate(ready)])

    ready_ids = [row.id for row in ready]
    session.expire_all()
    # The collection we wrote to must still be the active one, read under a lock the switch also takes.
    state = session.scalar(
        select(IndexCollection.state).where(IndexCollection.name == active.name).with_for_update(read=True)
    )
    still_there = set(session.scalars(select(ProductImage.id).where(ProductImage.id.in_(ready_ids))))
    if state != CollectionState.active.value:
        # A reindex switched collections while we embedded: our vectors belong to the old model.
        session.execute(
            update(ProductImage)
            .where(ProductImage.id.in_(list(still_there)))
            .values(claimed_by=None, claimed_until=None, attempts=0)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        report.requeue.extend(sorted(still_there))
        return
    mark_indexed(session, sorted(still_there), version)
    session.commit()
    report.indexed.extend(sorted(still_there))
    # A photo deleted while we embedded must not keep a point: its delete already ran, maybe before our upsert.
    gone = [i for i in ready_ids if i not in still_there]
    if gone:
        index.delete(gone)
        report.vanished.extend(gone)


def mark_indexed(session: DbSession, image_ids: Sequence[int], version: str, chunk: int = 10_000) -> None:
    """Record photos as indexed by `version` (not committed: the caller's transaction decides)."""
    now = datetime.now(UTC)
    ids = list(image_ids)
    for start in range(0, len(ids), chunk):
        session.execute(
            update(ProductImage)
            .where(ProductImage.id.in_(ids[start : start + chunk]))
            .values(
                status=ImageStatus.indexed.value,
                model_version=version,
                indexed_at=now,
                error=None,
                failure_kind=None,
                claimed_by=None,
                claimed_until=None,
                attempts=0,  # attempts count the runs on a photo that never ended; this one did
            )
            .execution_options(synchronize_session=False)
        )


def mark_failed(*, session: DbSession, image_ids: Sequence[int], reason: str, kind: FailureKind) -> list[int]:
    """Record a failure for photos not indexed yet and not held by another worker; returns their ids."""
    now = datetime.now(UTC)
    ids = list(
        session.scalars(
            select(ProductImage.id).where(
                ProductImage.id.in_(list(image_ids)),
                ProductImage.status != ImageStatus.indexed.value,
                or_(ProductImage.claimed_by.is_(None), ProductImage.claimed_until < now),
            )
        )
    )
    if ids:
        _fail_ids(session, ids, reason, kind)
    return ids


def _fail_ids(session: DbSession, image_ids: list[int], reason: str, kind: FailureKind) -> None:
    session.execute(
        update(ProductImage)
        .where(ProductImage.id.in_(image_ids))
        .values(
            status=ImageStatus.failed.value,
            error=reason[:1000],
            failure_kind=kind.value,
            claimed_by=None,
            claimed_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    session.commit()
    log.warning("photos %s failed (%s): %s", image_ids, kind.value, reason)


def mark_enqueued(*, session: DbSession, image_ids: Sequence[int]) -> None:
    session.execute(
        update(ProductImage)
        .where(ProductImage.id.in_(list(image_ids)))
        .values(enqueued_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    session.commit()
