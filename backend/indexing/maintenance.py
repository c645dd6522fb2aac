"""The sweep inside the serving process, for the embedded default (no broker, so no beat and no worker).

With a broker, Celery beat sends the sweep to the workers instead.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from flask import Flask

from backend.config import Settings
from backend.core.extensions import db
from backend.indexing.sweep import run_sweep
from backend.worker.enqueue import yield_to_requests
from backend.worker.tasks import enqueue_embedding

log = logging.getLogger(__name__)


def start_in_process_sweep(app: Flask) -> threading.Event | None:
    """The quick sweep every SWEEP_INTERVAL_S, the full one every SWEEP_FULL_INTERVAL_S, in a daemon thread.

    Returns the event that stops it."""
    settings: Settings = app.config["SETTINGS"]
    if not settings.tasks_in_process:
        return None
    stop = threading.Event()
    started = datetime.now(UTC)  # photos enqueued before this: their in-process tasks died with the last process

    def loop() -> None:
        yield_to_requests(settings.background_nice)
        last_full = time.monotonic()
        while not stop.wait(settings.sweep_interval_s):
            full = time.monotonic() - last_full >= settings.sweep_full_interval_s
            with app.app_context():
                try:
                    run_sweep(
                        session=db.session, settings=settings, enqueue=enqueue_embedding, full=full, lost_before=started
                    )
                    if full:
                        last_full = time.monotonic()
                except Exception:  # the next round tries again; serving goes on
                    log.exception("in-process sweep failed")
                finally:
                    db.session.remove()

    threading.Thread(target=loop, name="sweep", daemon=True).start()
    return stop
