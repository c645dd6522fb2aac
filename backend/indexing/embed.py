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
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from PIL import Image
from sqlalchemy import and_, not_, or_, select, update
from sqlalchemy.orm import joinedload

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.core.metrics import observe_embedding
from backend.db.duplicates import record_pairs
from backend.db.models import CollectionState, FailureKind, ImageStatus, IndexCollection, ProductImage
from backend.db.photos import fail_photos, mark_indexed, update_photos
from backend.domain.photos import ImageLimits, MediaStorage, PhotoRefused, open_photo
from backend.index import Hit, IndexPoint, SearchFilter, VectorIndex
from backend.index.base import COPY
from backend.serving.active import Active

if TYPE_CHECKING:
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


def point_payload(image: ProductImage, model_version: str, attribute_keys: Sequence[str] = ()) -> dict[str, object]:
    return {**image.product.index_payload(attribute_keys), "image_id": image.id, "model_version": model_version}


@dataclass(frozen=True)
class PhotoRef:
    """What embedding a photo needs, as plain values: a row deleted meanwhile cannot break the run."""

    id: int
    stored_name: str
    payload: dict[str, object]


@dataclass(frozen=True)
class Claimed(PhotoRef):
    attempts: int = 0


def unreadable_reason(exc: Exception) -> str:
    """Why a stored photo cannot be read, in words fit for the API (the details go to the log)."""
    if isinstance(exc, FileNotFoundError):
        return "the stored file is missing"
    if isinstance(exc, PhotoRefused):
        return str(exc)  # our own check's sentence, e.g. the size against the limit
    return "the file is not a readable image"


# A task's photos go through the network this many at a time: the next ones are decoded (and the last ones'
# thumbnails made) by a helper thread while the network runs, which releases the GIL (bench/ingest.py).
PIPELINE_CHUNK = 8
_helpers: dict[int, ThreadPoolExecutor] = {}  # by process: a forked worker makes its own thread


def _helper() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _helpers:
        _helpers[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-prefetch")
    return _helpers[pid]


@dataclass
class _Decoded:
    photos: list[PhotoRef] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)


def _decode(photos: Sequence[PhotoRef], storage: MediaStorage, limits: ImageLimits) -> _Decoded:
    """Read and decode photos; the unreadable ones with their reason (told by the caller's thread)."""
    out = _Decoded()
    for photo in photos:
        try:
            out.images.append(open_photo(storage.read(photo.stored_name), limits.max_pixels, limits.max_aspect_ratio))
            out.photos.append(photo)
        except Exception as exc:  # any unreadable photo
            log.warning("photo %s (%s) cannot be read: %s: %s", photo.id, photo.stored_name, type(exc).__name__, exc)
            out.unreadable.append((photo.id, f"cannot read photo: {unreadable_reason(exc)}"))
    return out


def _thumbnails(decoded: _Decoded, storage: MediaStorage, limits: ImageLimits) -> None:
    for photo, image in zip(decoded.photos, decoded.images, strict=True):
        # The pages' thumbnail, from the pixels already decoded; the pages make it themselves if this fails.
        try:
            storage.thumbnail(photo.stored_name, image, max_pixels=limits.max_pixels)
        except Exception as exc:
            log.warning("photo %s: no thumbnail: %s: %s", photo.id, type(exc).__name__, exc)


def embed_and_upsert(
    *,
    photos: Sequence[PhotoRef],
    index: Callable[[], VectorIndex],
    embedder: Callable[[], Embedder],
    storage: MediaStorage,
    limits: ImageLimits,
    model_version: str,
    on_unreadable: Callable[[int, str], None],
) -> list[int]:
    """Decode the photos, embed them, upsert their points in one write; returns the ids written.

    PIPELINE_CHUNK photos at a time: while the network embeds some, the helper thread decodes the next ones and
    makes the thumbnails of the last ones (at most one chunk of pixels ahead). An unreadable photo is its own
    failure, not the batch's: `on_unreadable(id, reason)` hears of it. `index` and `embedder` are called only when
    there is a photo to write."""
    chunks = [photos[start : start + PIPELINE_CHUNK] for start in range(0, len(photos), PIPELINE_CHUNK)]
    if not chunks:
        return []
    # One helper thread, so its queue is the order: decode 1, thumbnails 0, decode 2, thumbnails 1, ...
    ahead: Future[_Decoded] = _helper().submit(_decode, chunks[0], storage, limits)
    behind: list[Future[None]] = []
    points: list[IndexPoint] = []
    model: Embedder | None = None
    try:
        for n in range(len(chunks)):
            decoded = ahead.result()
            if n + 1 < len(chunks):
                ahead = _helper().submit(_decode, chunks[n + 1], storage, limits)
            for image_id, reason in decoded.unreadable:
                on_unreadable(image_id, reason)
            if not decoded.photos:
                continue
            if model is None:
                model = embedder()
                assert model.model_version == model_version, "the embedder must be the collection's model"
            started = time.perf_counter()
            described = model.describe(decoded.images)  # the 1000-d vector, the look and the copy variants: one pass
            observe_embedding(len(decoded.images), time.perf_counter() - started)
            points += [
                IndexPoint(
                    photo.id,
                    described.embedding[i],
                    photo.payload,
                    described.look[i],
                    described.copy[i],
                    described.kind[i],
                )
                for i, photo in enumerate(decoded.photos)
            ]
            behind.append(_helper().submit(_thumbnails, decoded, storage, limits))
        if points:
            index().upsert(points)
        for thumbnails in behind:  # made before this returns (the pages and the tests look for them)
            thumbnails.result()
    finally:  # after a failure: what has not started is dropped, what runs is waited for
        waiting: list[Future[Any]] = [ahead, *behind]
        for pending in waiting:
            if not pending.cancel():
                pending.exception()  # wait: nothing of this call runs on after it returns
    return [point.id for point in points]


def embed_stored(
    session: DbSession,
    settings: Settings,
    version: str,
    index: VectorIndex,
    embedder: Embedder,
    image_ids: Sequence[int],
    on_unreadable: Callable[[int, str], None] = lambda image_id, reason: None,
) -> list[int]:
    """One batch of stored photos by id (those that still exist) embedded with `version` into `index`, outside any
    claim (a reindex's build, an experiment arm's collection): the ids written."""
    rows = session.scalars(
        select(ProductImage).where(ProductImage.id.in_(list(image_ids))).options(joinedload(ProductImage.product))
    ).all()
    photos = [PhotoRef(r.id, r.stored_name, point_payload(r, version, settings.attribute_keys)) for r in rows]
    session.rollback()  # plain values from here: no read transaction held while embedding
    return embed_and_upsert(
        photos=photos,
        index=lambda: index,
        embedder=lambda: embedder,
        storage=MediaStorage(settings.media_root),
        limits=ImageLimits.of(settings),
        model_version=version,
        on_unreadable=on_unreadable,
    )


def claim(
    *,
    session: DbSession,
    image_ids: Sequence[int],
    version: str,
    me: str,
    lease_s: float,
    attribute_keys: Sequence[str] = (),
) -> list[Claimed]:
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
            or_(ProductImage.status != ImageStatus.indexed, ProductImage.model_version.is_distinct_from(version)),
            # A photo that failed for a reason of its own stays failed until someone changes it.
            not_(
                and_(
                    ProductImage.status == ImageStatus.failed,
                    ProductImage.failure_kind == FailureKind.permanent,
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
            status=ImageStatus.pending,
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
    claimed = [
        Claimed(row.id, row.stored_name, point_payload(row, version, attribute_keys), row.attempts) for row in rows
    ]
    session.rollback()
    return claimed


def release(*, session: DbSession, me: str, charged: Sequence[int] = ()) -> None:
    """Give back what `me` still holds after an attempt that ended without a result (not the photos' fault)."""
    session.execute(
        update(ProductImage)
        .where(
            ProductImage.claimed_by == me,
            ProductImage.status == ImageStatus.pending,
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


def _renew(session: DbSession, image_ids: Sequence[int], me: str, lease_s: float) -> None:
    """Extend `me`'s lease on photos it still holds, before a batch that may take a while."""
    session.execute(
        update(ProductImage)
        .where(ProductImage.id.in_(list(image_ids)), ProductImage.claimed_by == me)
        .values(claimed_until=datetime.now(UTC) + timedelta(seconds=lease_s))
        .execution_options(synchronize_session=False)
    )
    session.commit()


def _charge(session: DbSession, rows: Sequence[Claimed], report: IndexReport) -> None:
    """Count an attempt on these photos, committed before any work: a photo that kills the process is counted."""
    ids = [row.id for row in rows]
    update_photos(session, ids, attempts=ProductImage.attempts + 1)
    session.commit()
    report.charged.extend(ids)


@dataclass(frozen=True)
class IndexingPolicy:
    """How a worker indexes: who it is (`me`, on its claims), how long a claim lasts, after how many attempts a
    photo that kills the process fails, which attributes go into the payload, and whether near-copies are linked."""

    me: str
    lease_s: float
    max_attempts: int
    attribute_keys: Sequence[str] = ()
    near_copies: NearCopies | None = None

    @classmethod
    def of(cls, settings: Settings, me: str) -> IndexingPolicy:
        return cls(me, settings.claim_lease_s, settings.max_attempts, settings.attribute_keys, NearCopies.of(settings))


@dataclass(frozen=True)
class _Run:
    """One `index_photos` call: where its vectors go, what embeds them, and what it reports to."""

    session: DbSession
    active: Active
    index: Callable[[], VectorIndex]
    embedder: Callable[[], Embedder]
    storage: MediaStorage
    limits: ImageLimits
    report: IndexReport
    after: Callable[[Sequence[PhotoRef]], int] | None


def index_photos(
    *,
    session: DbSession,
    active: Active,
    index: Callable[[], VectorIndex],
    embedder: Callable[[], Embedder],
    storage: MediaStorage,
    image_ids: Sequence[int],
    limits: ImageLimits,
    policy: IndexingPolicy,
) -> IndexReport:
    """Embed and upsert the given photos into the active collection; idempotent (point id = image id).

    `index` and `embedder` are called only when there is work: a duplicate delivery touches neither.
    On any exception the claims are released (the attempts of this run given back) and it propagates.
    """
    report = IndexReport()
    me, lease_s, near_copies = policy.me, policy.lease_s, policy.near_copies
    after = (lambda photos: link_near_copies(session, index(), photos, near_copies)) if near_copies else None
    run = _Run(session, active, index, embedder, storage, limits, report, after)
    rows = claim(
        session=session,
        image_ids=image_ids,
        version=active.model_version,
        me=me,
        lease_s=lease_s,
        attribute_keys=policy.attribute_keys,
    )
    try:
        _classify_unclaimed(session, image_ids, {row.id for row in rows}, report)
        fresh = [row for row in rows if row.attempts == 0]
        # The last attempt on these never ended (the process died): maybe they kill it. One at a time.
        suspects = [row for row in rows if row.attempts > 0]
        if fresh:
            _charge(session, fresh, report)
            _embed_group(run, fresh)
        for row in suspects:
            _renew(session, [row.id], me, lease_s)
            if row.attempts >= policy.max_attempts:
                reason = (
                    f"gave up after {row.attempts} attempts: the worker process died each time it embedded this photo"
                )
                fail_photos(session, [row.id], reason, FailureKind.permanent)
                report.failed[row.id] = reason
                continue
            _charge(session, [row], report)
            _embed_group(run, [row])
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
        elif found[image_id] != ImageStatus.pending:
            report.skipped.append(image_id)  # indexed, or failed for a reason of its own
        else:
            report.busy.append(image_id)  # another live worker holds it


def _embed_group(run: _Run, rows: list[Claimed]) -> None:
    session, active, report, after, index_of = run.session, run.active, run.report, run.after, run.index

    def unreadable(image_id: int, reason: str) -> None:
        fail_photos(session, [image_id], reason, FailureKind.permanent)
        report.failed[image_id] = reason

    ready_ids = embed_and_upsert(
        photos=rows,
        index=index_of,
        embedder=run.embedder,
        storage=run.storage,
        limits=run.limits,
        model_version=active.model_version,
        on_unreadable=unreadable,
    )
    if not ready_ids:
        return
    session.expire_all()
    # The collection we wrote to must still be the active one, read under a lock the switch also takes.
    state = session.scalar(
        select(IndexCollection.state).where(IndexCollection.name == active.name).with_for_update(read=True)
    )
    still_there = set(session.scalars(select(ProductImage.id).where(ProductImage.id.in_(ready_ids))))
    if state != CollectionState.active:
        # A reindex switched collections while we embedded: our vectors belong to the old model.
        update_photos(session, sorted(still_there), claimed_by=None, claimed_until=None, attempts=0)
        session.commit()
        report.requeue.extend(sorted(still_there))
        return
    mark_indexed(session, sorted(still_there), active.model_version)
    session.commit()
    report.indexed.extend(sorted(still_there))
    if after is not None:
        after([row for row in rows if row.id in still_there])
    # A photo deleted while we embedded must not keep a point: its delete already ran, maybe before our upsert.
    gone = [i for i in ready_ids if i not in still_there]
    if gone:
        index_of().delete(gone)
        report.vanished.extend(gone)


NEAR_COPIES_PER_PHOTO = 8


@dataclass(frozen=True)
class NearCopies:
    """When a photo of another product is a near-copy: by the copy descriptor (1 - cosine of the best pair of
    variants under `copy_distance`), or in a collection from before it, by the 1000-d vector (`distance`)."""

    copy_distance: float
    distance: float

    @classmethod
    def of(cls, settings: Settings) -> NearCopies:
        return cls(settings.copy_distance, settings.duplicate_distance)

    @property
    def min_similarity(self) -> float:
        """The copy descriptor's cosine a near-copy reaches."""
        return 1 - self.copy_distance

    def find(
        self, index: VectorIndex, image_ids: Sequence[int], where: Callable[[int], SearchFilter]
    ) -> dict[int, list[Hit]]:
        """Per photo id: its near-copies among the points `where(photo id)` allows."""
        found: dict[int, list[Hit]] = {}
        if index.descriptors:
            for image_id, variants in index.named_vectors(image_ids, COPY).items():
                found[image_id] = index.copies(
                    variants, limit=NEAR_COPIES_PER_PHOTO, where=where(image_id), min_similarity=self.min_similarity
                )
            return found
        for image_id, vector in index.vectors(image_ids).items():
            found[image_id] = index.search_batch(
                [vector], limit=NEAR_COPIES_PER_PHOTO, where=where(image_id), max_distance=self.distance
            )[0]
        return found


def link_near_copies(session: DbSession, index: VectorIndex, photos: Sequence[PhotoRef], rule: NearCopies) -> int:
    """Pair each just-indexed photo with the near-copies among the photos of other products; committed.

    Whichever photo of a pair is indexed second finds the first. Best effort: the photos stay indexed if this
    fails (a photo deleted meanwhile, the store away), and the failure is logged."""
    try:
        products: dict[int, int] = {}
        for photo in photos:
            product_id = photo.payload.get("product_id")
            if isinstance(product_id, int):
                products[photo.id] = product_id
        near = rule.find(index, list(products), lambda i: SearchFilter(exclude_product_ids=(products[i],)))
        pairs = [(image_id, hit.id, hit.distance) for image_id, hits in near.items() for hit in hits]
        found = record_pairs(session, pairs)
        session.commit()
    except Exception as exc:
        session.rollback()
        log.warning(
            "near-copy check of photos %s skipped: %s: %s", [p.id for p in photos][:10], type(exc).__name__, exc
        )
        return 0
    if found:
        log.info("%d near-copy pairs found among photos %s", found, [p.id for p in photos][:10])
    return found
