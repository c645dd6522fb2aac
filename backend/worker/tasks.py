"""Celery tasks: thin, they take ids and call library code."""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import InterfaceError as DbInterfaceError

from backend.config import Settings, current_settings
from backend.core.extensions import db
from backend.db.models import FailureKind, Product
from backend.db.photos import mark_enqueued, mark_failed
from backend.domain.experiments import parse_arm
from backend.domain.photos import ImageLimits, MediaStorage
from backend.index import IndexUnavailable, VectorIndex
from backend.indexing.embed import IndexingPolicy, index_photos, worker_identity
from backend.indexing.mirror import mirror_photos
from backend.indexing.reindex import reindex
from backend.indexing.sweep import run_sweep
from backend.services.experiments import start_experiment
from backend.services.similar import prepare_collection
from backend.serving.active import active_collection, active_index, building_indexes, experiment_indexes, index_of
from backend.serving.embedders import UnknownModel, embedder_for

log = logging.getLogger(__name__)

# Worth trying again later: the store, the database or the broker was away; the model file is missing here.
TRANSIENT = (IndexUnavailable, OperationalError, DbInterfaceError, BrokerError, ConnectionError, UnknownModel)


REINDEX_LIMIT_S = 24 * 3600


def backoff_s(settings: Settings, retries: int) -> float:
    """Exponential backoff with full jitter, capped below the visibility timeout by Settings."""
    cap = min(settings.retry_backoff_max_s, settings.retry_backoff_s * 2**retries)
    return random.uniform(cap / 2, cap)


def _describe(exc: BaseException) -> str:
    """The public reason (shown in the photo's JSON); the exception itself goes to the log."""
    if isinstance(exc, IndexUnavailable):
        return "vector index unavailable"
    if isinstance(exc, UnknownModel):
        return "the active model cannot be loaded here"
    return "the database or the broker was unavailable"


def _safe_rollback() -> None:
    try:
        db.session.rollback()
    except DBAPIError:
        db.session.remove()


@shared_task(bind=True, name="lookalike.embed_images")
def embed_images(self: Task, image_ids: list[int]) -> dict[str, int]:
    """Embed photos by id with the active collection's model and upsert them into it."""
    settings = current_settings()
    me = worker_identity(self.request.id or uuid.uuid4().hex)
    try:
        active = active_collection(session=db.session, settings=settings)
        report = index_photos(
            session=db.session,
            active=active,
            index=lambda: index_of(settings, active),  # the collection read above, not a fresh read
            embedder=lambda: embedder_for(settings, active.model_version),
            storage=MediaStorage(settings.media_root),
            image_ids=image_ids,
            limits=ImageLimits.of(settings),
            policy=IndexingPolicy.of(settings, me),
        )
    except SoftTimeLimitExceeded:
        _safe_rollback()
        if len(image_ids) > 1:  # too slow as one batch: try the halves
            half = len(image_ids) // 2
            log.warning("embed_images of %d photos passed the soft time limit: splitting", len(image_ids))
            enqueue_embedding(image_ids[:half])
            enqueue_embedding(image_ids[half:])
            return {"split": len(image_ids)}
        reason = f"embedding took longer than the soft time limit ({settings.task_soft_time_limit_s} s)"
        return {
            "failed": len(
                mark_failed(session=db.session, image_ids=image_ids, reason=reason, kind=FailureKind.permanent)
            )
        }
    except TRANSIENT as exc:
        _safe_rollback()
        if self.request.is_eager or self.request.retries >= settings.task_max_retries:
            log.warning("embed_images %s: giving up for now: %s", image_ids[:10], exc)
            tries = f" (after {self.request.retries + 1} tries; the sweep retries it)"
            failed = mark_failed(
                session=db.session, image_ids=image_ids, reason=_describe(exc) + tries, kind=FailureKind.transient
            )
            return {"failed": len(failed)}
        countdown = backoff_s(settings, self.request.retries)
        log.warning("embed_images %s: %s; retry in %.1f s", image_ids[:10], exc, countdown)
        raise self.retry(exc=exc, countdown=countdown, max_retries=settings.task_max_retries) from exc
    except Exception:
        # Not worth retrying (a bug, a broken checkpoint): record why, never leave the photos pending.
        _safe_rollback()
        log.exception("embed_images %s failed", image_ids[:10])
        reason = "embedding failed (the worker's log has the error)"
        return {
            "failed": len(
                mark_failed(session=db.session, image_ids=image_ids, reason=reason, kind=FailureKind.permanent)
            )
        }
    if report.requeue:
        enqueue_embedding(report.requeue)
    mirror_photos(session=db.session, settings=settings, image_ids=report.indexed)  # a running experiment's arms
    return report.counts()


def _index_task(self: Task, name: str, action: Callable[[VectorIndex], None]) -> None:
    """Run `action(index)` on the active collection, any being built and a running experiment's; retry transient
    failures, then leave it to the sweep."""
    settings = current_settings()
    try:
        _, index = active_index(session=db.session, settings=settings)
        arms = [arm for _, _, arm in experiment_indexes(session=db.session, settings=settings)]
        for each in [index, *building_indexes(session=db.session, settings=settings), *arms]:
            action(each)
    except TRANSIENT as exc:
        _safe_rollback()
        if self.request.is_eager or self.request.retries >= settings.task_max_retries:
            log.warning("%s gave up: %s (the sweep repairs the drift)", name, exc)
            return
        raise self.retry(exc=exc, countdown=backoff_s(settings, self.request.retries)) from exc


@shared_task(bind=True, name="lookalike.delete_points")
def delete_points(self: Task, image_ids: list[int]) -> None:
    """Remove the points of deleted photos (the rows are gone already)."""
    _index_task(self, "delete_points", lambda index: index.delete(image_ids))


@shared_task(bind=True, name="lookalike.sync_product")
def sync_product(self: Task, product_id: int) -> None:
    """Copy a product's category, brand, price and filter attributes from the database onto its points."""
    keys = current_settings().attribute_keys

    def apply(index: VectorIndex) -> None:
        product = db.session.get(Product, product_id)
        if product is not None:
            index.set_product_payload(product_id, product.index_payload(keys))

    _index_task(self, "sync_product", apply)


@shared_task(name="lookalike.sweep", ignore_result=False)
def sweep(full: bool = False) -> dict[str, Any]:
    """Re-enqueue lost and transiently failed photos, repair drift between the database and the index."""
    return run_sweep(session=db.session, settings=current_settings(), enqueue=enqueue_embedding, full=full).as_dict()


@shared_task(
    name="lookalike.reindex", acks_late=False, soft_time_limit=REINDEX_LIMIT_S, time_limit=REINDEX_LIMIT_S + 60
)
def reindex_task(version: str | None = None) -> dict[str, Any]:
    """Reindex every photo with `version` and switch to it (the models page's "activate").

    Acknowledged when it starts: a reindex that dies is not handed to another worker after the broker's
    visibility timeout (its half-built collection is dropped, and the admin starts it again)."""
    settings = current_settings()
    # Without a broker this runs in the serving process (`in_background`): the new collection is readied for its
    # queries and stays open.
    report = reindex(
        session=db.session,
        settings=settings,
        version=version,
        enqueue=enqueue_embedding,
        prepare=partial(prepare_collection, settings=settings) if settings.tasks_in_process else None,
    )
    return vars(report)


@shared_task(name="lookalike.start_experiment", acks_late=False, soft_time_limit=REINDEX_LIMIT_S)
def experiment_task(arms: list[str]) -> dict[str, Any]:
    """Start a model A/B test (the models page): the arms' collections are built as a reindex builds, then go
    live beside the active one. Acknowledged when it starts, as the reindex is."""
    settings = current_settings()
    report = start_experiment(
        session=db.session,
        settings=settings,
        arms=[parse_arm(arm) for arm in arms],
        prepare=partial(prepare_collection, settings=settings) if settings.tasks_in_process else None,
    )
    return vars(report)


def enqueue_embedding(image_ids: list[int], *, batch_size: int | None = None) -> None:
    """Enqueue photos for embedding in batches, recording when; without a broker this runs now, in this process."""
    if not image_ids:
        return
    size = batch_size or current_settings().embed_batch_size
    mark_enqueued(session=db.session, image_ids=image_ids)
    for start in range(0, len(image_ids), size):
        embed_images.delay(list(image_ids[start : start + size]))
