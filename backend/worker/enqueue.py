"""What the API and the CLI hand to the pipeline, after their commit: one call per kind of work.

With a broker these send Celery tasks (embeds to the `embed` queue, index upkeep to `index`);
without one the same tasks run now, in this process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import threading
from typing import Any

from flask import current_app

from backend.config import current_settings
from backend.worker.tasks import (
    delete_points,
    enqueue_embedding,
    experiment_task,
    reindex_task,
    sweep,
    sync_product,
)

__all__ = [
    "enqueue_embedding",
    "enqueue_experiment",
    "enqueue_payload_sync",
    "enqueue_point_deletes",
    "enqueue_reindex",
    "in_background",
    "sweep",
    "yield_to_requests",
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


def enqueue_experiment(arms: list[str]) -> None:
    """Start a model A/B test with these arms (`NAME=VERSION[:WEIGHT]`): its builds run in the background."""
    in_background(experiment_task, arms)


def give_memory_back() -> None:
    """Hand the heap's free pages back to the system after a long task in the serving process (an import, a
    reindex): glibc keeps them otherwise, and the serving process stayed hundreds of MB larger after each
    (bench/soak.py). A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def yield_to_requests(nice: int) -> None:
    """Lower this thread's CPU priority (Linux: the nice value is per thread, and threads it starts, such as
    torch's OpenMP team for its forward passes, inherit it). The serving process's background work then runs on
    the CPU its requests leave: a reindex on 2 cores made the shoppers' p99 2.6x (bench/soak.py). Raising the
    value needs no privilege; it cannot be lowered again, and the thread ends with its task."""
    if nice <= 0 or sys.platform != "linux":  # elsewhere a thread id is no target for setpriority
        return
    try:
        own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(own, nice))
    except OSError as exc:  # a sandbox that forbids it: the work runs at the normal priority
        log.warning("background work keeps the normal priority: %s", exc)


def in_background(task: Any, *args: Any) -> None:
    """A long task: sent to Celery with a broker; without one, run in a thread of this process (the embedded
    store belongs to it), which carries on after the request that started it."""
    if not current_settings().tasks_in_process:
        task.delay(*args)
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    nice = current_settings().background_nice

    def run() -> None:
        yield_to_requests(nice)
        with app.app_context():
            try:
                task(*args)  # the task's body, run here
            except Exception:
                log.exception("%s%s failed", task.name, args)
            finally:
                give_memory_back()

    threading.Thread(target=run, name=f"{task.name}-{args}", daemon=True).start()
