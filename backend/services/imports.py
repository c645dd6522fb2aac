"""Feeds sent through the API: stored under the imports folder, recorded as an `imports` row, and run as the
Celery task `lookalike.import_feed` with a broker, in a thread of this process without one. The row shows
progress, the summary and the per-row errors.

The task is acknowledged when it starts (an import can take longer than the broker's visibility timeout, and
must not be handed to a second worker meanwhile). One whose worker died stays `running`; sending the feed again
is safe: rows already in come out unchanged."""

from __future__ import annotations

import logging
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from celery import shared_task
from sqlalchemy import update

from backend.config import Settings, current_settings
from backend.core.extensions import DbSession, db
from backend.db.models import FeedImport, ImportState
from backend.db.products import MAX_ID
from backend.errors import FeedUnreadable, InvalidInput, NotFound
from backend.indexing.embed import worker_identity
from backend.services.feeds import (
    FeedSummary,
    FolderPhotos,
    Handoff,
    PhotoSource,
    SummaryCounts,
    ZipPhotos,
    count_rows,
    feed_format,
    import_rows,
    read_rows,
)
from backend.worker.enqueue import enqueue_embedding, enqueue_payload_sync, enqueue_point_deletes, in_background

log = logging.getLogger(__name__)
IMPORT_LIMIT_S = 24 * 3600
PROGRESS_EVERY_S = 1.0


def create_import(
    *,
    session: DbSession,
    settings: Settings,
    feed: IO[bytes],
    feed_name: str,
    photos_zip: IO[bytes] | None,
    dry_run: bool,
) -> FeedImport:
    """Store the feed (and the zip), record the import as queued; the caller starts it after this commit."""
    fmt = feed_format(feed_name)
    if photos_zip is None and settings.import_dir is None:
        raise InvalidInput("photos", "send the photos as a zip, or set IMPORT_DIR to a folder that holds them")
    record = FeedImport(
        feed_name=Path(feed_name).name[:255],
        photos_from="zip" if photos_zip is not None else "folder",
        dry_run=dry_run,
        state=ImportState.queued,
        rows_done=0,
        summary={},
        errors=[],
    )
    session.add(record)
    session.flush()
    folder = settings.imports_dir / str(record.id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _save(feed, folder / f"feed.{fmt}")
        if photos_zip is not None:
            _save(photos_zip, folder / "photos.zip")
            ZipPhotos(folder / "photos.zip").zip.close()  # a file that is not a zip is refused now, not later
        session.commit()
    except BaseException:
        session.rollback()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return record


def _save(stream: IO[bytes], path: Path) -> None:
    with path.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)


def get_import(*, session: DbSession, import_id: int) -> FeedImport:
    record = session.get(FeedImport, import_id) if 0 < import_id <= MAX_ID else None
    if record is None:
        raise NotFound(f"import {import_id} not found")
    return record


def run_import(*, session: DbSession, settings: Settings, import_id: int, handoff: Handoff) -> FeedSummary | None:
    """Run a recorded import, writing its progress on its row about every second; None if the row is gone."""
    record = session.get(FeedImport, import_id)
    if record is None:
        return None
    folder = settings.imports_dir / str(import_id)
    feed_path = next(folder.glob("feed.*"), None)
    dry_run, from_zip = record.dry_run, record.photos_from == "zip"
    now = datetime.now(UTC)
    _set(
        session,
        import_id,
        state=ImportState.running,
        started_at=now,
        progress_at=now,
        rows_done=0,
        runner=worker_identity(f"import-{import_id}"),
    )
    summary: FeedSummary | None = None
    try:
        if feed_path is None:
            raise FeedUnreadable("the stored feed is missing")
        photos: PhotoSource
        if from_zip:
            photos = ZipPhotos(folder / "photos.zip")
        elif settings.import_dir is not None:
            photos = FolderPhotos(settings.import_dir)
        else:
            raise FeedUnreadable("IMPORT_DIR is not set where this import runs")
        _set(session, import_id, rows_total=count_rows(feed_path))
        done = [0, time.monotonic()]
        live = summary = FeedSummary()

        def progress(n: int) -> None:
            done[0] += n
            if time.monotonic() - done[1] >= PROGRESS_EVERY_S:  # called between rows: nothing else is pending
                done[1] = time.monotonic()
                _set(
                    session,
                    import_id,
                    rows_done=done[0] - 1,
                    summary=live.as_dict(),
                    errors=live.errors,
                    progress_at=datetime.now(UTC),
                )

        with feed_path.open("rb") as feed:
            summary = import_rows(
                session=session,
                settings=settings,
                rows=read_rows(feed, feed_format(feed_path.name)),
                photos=photos,
                handoff=handoff,
                dry_run=dry_run,
                progress=progress,
                summary=live,
            )
    except FeedUnreadable as exc:
        session.rollback()
        _finish(session, import_id, ImportState.failed, summary, error=exc.message)
        discard_upload(settings, import_id)
        return summary
    except Exception as exc:
        session.rollback()
        log.exception("import %s failed", import_id)
        _finish(session, import_id, ImportState.failed, summary, error=f"the import broke off ({type(exc).__name__})")
        discard_upload(settings, import_id)
        raise
    _finish(session, import_id, ImportState.done, summary)
    discard_upload(settings, import_id)
    return summary


def discard_upload(settings: Settings, import_id: int) -> None:
    """The feed and zip an import was sent with (up to IMPORT_MAX_MB), once it has ended: its row keeps the
    summary and errors, the photos are stored. Failed ones were kept for ever before."""
    shutil.rmtree(settings.imports_dir / str(import_id), ignore_errors=True)


def _set(session: DbSession, import_id: int, **values: object) -> None:
    session.execute(update(FeedImport).where(FeedImport.id == import_id).values(**values))
    session.commit()


def _finish(
    session: DbSession, import_id: int, state: ImportState, summary: FeedSummary | None, error: str | None = None
) -> None:
    values: dict[str, object] = {"state": state, "finished_at": datetime.now(UTC), "error": error}
    if summary is not None:
        values.update(rows_done=summary.rows, summary=summary.as_dict(), errors=summary.errors)
    _set(session, import_id, **values)


def pipeline_handoff() -> Handoff:
    return Handoff(embed=enqueue_embedding, payload_sync=enqueue_payload_sync, point_deletes=enqueue_point_deletes)


@shared_task(
    name="lookalike.import_feed", acks_late=False, soft_time_limit=IMPORT_LIMIT_S, time_limit=IMPORT_LIMIT_S + 60
)
def import_feed_task(import_id: int) -> SummaryCounts | dict[str, object]:
    """Run a feed import recorded by POST /api/v1/imports."""
    summary = run_import(
        session=db.session, settings=current_settings(), import_id=import_id, handoff=pipeline_handoff()
    )
    return summary.as_dict() if summary is not None else {}


def start_import(import_id: int) -> None:
    """The Celery task with a broker; without one, a thread of this process (the embedded store belongs to it)."""
    in_background(import_feed_task, import_id)
