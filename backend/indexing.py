"""Embed photos by id and mirror them into the vector index; the database records the outcome."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from backend.extensions import DbSession
from backend.index import IndexPoint, VectorIndex
from backend.media import MediaStorage, open_image
from backend.models import ImageStatus, ProductImage
from ml.embedder import Embedder

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    indexed: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    vanished: list[int] = field(default_factory=list)


def point_payload(image: ProductImage, model_version: str) -> dict[str, object]:
    return {**image.product.index_payload(), "image_id": image.id, "model_version": model_version}


def index_images(
    *,
    session: DbSession,
    index: VectorIndex,
    embedder: Embedder,
    storage: MediaStorage,
    image_ids: Sequence[int],
    max_pixels: int,
) -> IndexReport:
    """Embed and upsert the given photos; idempotent (point id = image id).

    Photos already indexed by this model are skipped. A photo that cannot be read or decoded
    ends `failed` with the reason. IndexUnavailable propagates so the caller can retry; the
    attempt is counted before any work so a photo that kills its process is still counted.
    """
    report = IndexReport()
    version = embedder.model_version
    rows = session.scalars(
        select(ProductImage)
        .where(ProductImage.id.in_(list(image_ids)))
        .options(joinedload(ProductImage.product))
        .order_by(ProductImage.id)
    ).all()
    found = {row.id for row in rows}
    report.vanished.extend(i for i in image_ids if i not in found)
    todo = []
    for row in rows:
        if row.status == ImageStatus.indexed and row.model_version == version:
            report.skipped.append(row.id)
        else:
            row.attempts += 1
            todo.append(row)
    session.commit()

    decoded, ready = [], []
    for row in todo:
        try:
            decoded.append(open_image(storage.read(row.stored_name), max_pixels))
            ready.append(row)
        except Exception as exc:  # any unreadable photo is this photo's failure, not the batch's
            _fail(row, f"cannot read photo: {type(exc).__name__}: {exc}")
            report.failed[row.id] = row.error or ""
    session.commit()
    if not ready:
        return report

    vectors = embedder.embed(decoded)
    index.upsert([IndexPoint(row.id, vectors[i], point_payload(row, version)) for i, row in enumerate(ready)])

    # A photo deleted while we embedded must not keep a point: the delete already ran.
    ready_ids = [row.id for row in ready]
    session.expire_all()
    still_there = set(session.scalars(select(ProductImage.id).where(ProductImage.id.in_(ready_ids))))
    gone = [i for i in ready_ids if i not in still_there]
    if gone:
        index.delete(gone)
        report.vanished.extend(gone)
    now = datetime.now(UTC)
    for row in session.scalars(select(ProductImage).where(ProductImage.id.in_(list(still_there)))):
        row.status = ImageStatus.indexed.value
        row.model_version = version
        row.indexed_at = now
        row.error = None
        report.indexed.append(row.id)
    session.commit()
    return report


def mark_failed(*, session: DbSession, image_ids: Sequence[int], reason: str) -> None:
    """Record a failure for photos that are not indexed yet (already indexed ones keep their point)."""
    for row in session.scalars(select(ProductImage).where(ProductImage.id.in_(list(image_ids)))):
        if row.status != ImageStatus.indexed:
            _fail(row, reason)
    session.commit()


def _fail(row: ProductImage, reason: str) -> None:
    row.status = ImageStatus.failed.value
    row.error = reason[:1000]
    log.warning("photo %s failed: %s", row.id, reason)
