"""What the API and the CLI hand to the pipeline, after their commit: one call per kind of work.

With a broker these send Celery tasks (embeds to the `embed` queue, index upkeep to `index`);
without one the same tasks run now, in this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from typing import Any

from flask import current_app

from backend.config import current_settings
from backend.pipeline.tasks import delete_points, enqueue_embedding, reindex_task, sweep, sync_product

__all__ = [
    "enqueue_embedding",
    "enqueue_payload_sync",
    "enqueue_point_deletes",
    "enqueue_reindex",
    "in_background",
    "sweep",
]
log = logging.getLogger(__name__)


def enqueue_point_deletes(image_ids: list[int]) -> None:
    """Remove the points of photos whose rows are deleted."""
    if image_ids:
        delete_points.delay(image_ids)


def enqueue_payload_sync(product_id: int) -> None:
    """Copy a product's category, brand and price onto its points."""
    sync_product.delay(product_id)


def enqueue_reindex(version: str) -> None:
    """Reindex every photo with `version`, then switch to it (in the background, see `in_background`)."""
    in_background(reindex_task, version)


def give_memory_back() -> None:
    """Hand the heap's free pages back to the system after a long task in the serving process (an import, a
    reindex): glibc keeps them otherwise, and the serving process stayed hundreds of MB larger after each
    (bench/soak.py). A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def in_background(task: Any, *args: Any) -> None:
    """A long task: sent to Celery with a broker; without one, run in a thread of this process (the embedded
    store belongs to it), which carries on after the request that started it."""
    if not current_settings().tasks_in_process:
        task.delay(*args)
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]

    def run() -> None:
        with app.app_context():
            try:
                task(*args)  # the task's body, run here
            except Exception:
                log.exception("%s%s failed", task.name, args)
            finally:
                give_memory_back()

    threading.Thread(target=run, name=f"{task.name}-{args}", daemon=True).start()
