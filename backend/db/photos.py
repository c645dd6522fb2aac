"""Data access for the indexing state of photos: status, failures, enqueue times. The caller owns the session."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select, update

from backend.core.extensions import DbSession
from backend.db.models import FailureKind, ImageStatus, ProductImage

log = logging.getLogger(__name__)
CHUNK = 10_000  # ids per `IN (...)`: far below every database's parameter limit


def update_photos(session: DbSession, image_ids: Sequence[int], **values: Any) -> None:
    """`UPDATE product_images SET values WHERE id IN image_ids`, in chunks; not committed."""
    ids = list(image_ids)
    for start in range(0, len(ids), CHUNK):
        session.execute(
            update(ProductImage)
            .where(ProductImage.id.in_(ids[start : start + CHUNK]))
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def mark_indexed(session: DbSession, image_ids: Sequence[int], version: str) -> None:
    """Record photos as indexed by `version` (not committed: the caller's transaction decides)."""
    update_photos(
        session,
        image_ids,
        status=ImageStatus.indexed,
        model_version=version,
        indexed_at=datetime.now(UTC),
        error=None,
        failure_kind=None,
        claimed_by=None,
        claimed_until=None,
        attempts=0,  # attempts count the runs on a photo that never ended; this one did
    )


def set_pending(session: DbSession, image_ids: Sequence[int]) -> None:
    """Make photos wait for an embed again, their last failure forgotten; committed."""
    update_photos(session, image_ids, status=ImageStatus.pending, error=None, failure_kind=None)
    session.commit()


def fail_photos(session: DbSession, image_ids: Sequence[int], reason: str, kind: FailureKind) -> None:
    """Record photos as failed for `reason`, their claims dropped; committed."""
    update_photos(
        session,
        image_ids,
        status=ImageStatus.failed,
        error=reason[:1000],
        failure_kind=kind,
        claimed_by=None,
        claimed_until=None,
    )
    session.commit()
    log.warning("photos %s failed (%s): %s", list(image_ids), kind.value, reason)


def mark_failed(*, session: DbSession, image_ids: Sequence[int], reason: str, kind: FailureKind) -> list[int]:
    """Record a failure for photos not indexed yet and not held by another worker; returns their ids."""
    now = datetime.now(UTC)
    ids = list(
        session.scalars(
            select(ProductImage.id).where(
                ProductImage.id.in_(list(image_ids)),
                ProductImage.status != ImageStatus.indexed,
                or_(ProductImage.claimed_by.is_(None), ProductImage.claimed_until < now),
            )
        )
    )
    if ids:
        fail_photos(session, ids, reason, kind)
    return ids


def mark_enqueued(*, session: DbSession, image_ids: Sequence[int]) -> None:
    update_photos(session, image_ids, enqueued_at=datetime.now(UTC))
    session.commit()


def failed_photos(*, session: DbSession, limit: int = 200) -> list[ProductImage]:
    """The most recent failed photos, newest first, with their reasons."""
    query = select(ProductImage).where(ProductImage.status == ImageStatus.failed)
    return list(session.scalars(query.order_by(ProductImage.id.desc()).limit(limit)))


def reset_failed(*, session: DbSession, image_ids: Sequence[int] | None = None) -> list[int]:
    """Make failed photos (these, or all) wait for an embed again with a clean slate; committed. Returns their ids."""
    query = select(ProductImage.id).where(ProductImage.status == ImageStatus.failed)
    if image_ids is not None:
        query = query.where(ProductImage.id.in_(list(image_ids)))
    ids = list(session.scalars(query.order_by(ProductImage.id)))
    update_photos(session, ids, status=ImageStatus.pending, error=None, failure_kind=None, attempts=0)
    session.commit()
    return ids
