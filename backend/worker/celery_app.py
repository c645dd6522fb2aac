"""The Celery app, bound to a Flask app so that every task runs inside its app context.

The settings that keep a photo from being lost, in one place:
- a task is acknowledged only after it ran (`acks_late`), and given back if its process died
  (`task_reject_on_worker_lost`); each process reserves one task at a time (prefetch 1);
- Redis hands an unacknowledged task to another worker after the visibility timeout, so every
  time limit and retry wait stays below it (Settings checks this at start-up);
- a soft time limit raises inside the task, the hard limit 30 s later kills its process.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from flask import Flask
from kombu import Queue
from prometheus_client import start_http_server

from backend.config import Settings
from backend.core.extensions import db
from backend.core.metrics import multiprocess_dir, multiprocess_registry, process_ended

log = logging.getLogger(__name__)
EMBED_QUEUE = "embed"  # the GPU worker's queue
INDEX_QUEUE = "index"  # deletes, payload syncs, the sweep: short tasks on the vector store


def celery_init_app(app: Flask) -> Celery:
    settings: Settings = app.config["SETTINGS"]

    class FlaskTask(Task):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["backend.worker.tasks", "backend.services.imports"])
    celery_app.conf.update(
        # Without a broker the same tasks run in-process, synchronously, when enqueued.
        task_always_eager=settings.tasks_in_process,
        task_eager_propagates=True,
        broker_url=settings.redis_url or "memory://",
        result_backend=settings.redis_url,  # only `lookalike sweep` waits for a result
        task_ignore_result=True,
        result_expires=3600,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        result_backend_transport_options={"visibility_timeout": settings.broker_visibility_timeout_s},
        task_queues=[Queue(EMBED_QUEUE), Queue(INDEX_QUEUE)],
        task_default_queue=INDEX_QUEUE,
        task_routes={
            "lookalike.embed_images": {"queue": EMBED_QUEUE},
            "lookalike.reindex": {"queue": EMBED_QUEUE},
            "lookalike.start_experiment": {"queue": EMBED_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # a Redis restart: keep trying, then resume consuming
        worker_cancel_long_running_tasks_on_connection_loss=False,
        beat_schedule={
            "sweep": {"task": "lookalike.sweep", "schedule": settings.sweep_interval_s},
            "sweep-full": {
                "task": "lookalike.sweep",
                "schedule": settings.sweep_full_interval_s,
                "kwargs": {"full": True},
            },
        },
        beat_schedule_filename=str(settings.var_dir / "celerybeat-schedule"),
        worker_hijack_root_logger=False,
    )
    celery_app.set_default()
    stopped = threading.Event()
    app.extensions["celery"] = celery_app

    @worker_ready.connect(weak=False)
    def _quick_sweeps(sender: Any, **kwargs: Any) -> None:
        # At start (a worker back after a crash: what its dead process held goes back to the queue now) and
        # every SWEEP_INTERVAL_S after (a worker that died for good: its lease runs out, a live one notices),
        # beat or no beat, instead of after the broker's visibility timeout. Beat adds the hourly full sweep.
        celery = sender.app

        def send() -> None:
            try:
                celery.send_task("lookalike.sweep", kwargs={"full": False})
            except Exception:  # the broker is away: the next round tries again
                log.warning("could not send the quick sweep", exc_info=True)

        def every_interval() -> None:
            while not stopped.wait(settings.sweep_interval_s):
                send()

        send()
        threading.Thread(target=every_interval, name="quick-sweeps", daemon=True).start()

    @worker_ready.connect(weak=False)
    def _serve_metrics(sender: Any, **kwargs: Any) -> None:
        # The pool processes write their figures to the multiprocess folder; the main process shows their sum.
        if settings.worker_metrics_port and multiprocess_dir() is not None:
            start_http_server(
                settings.worker_metrics_port, addr=settings.worker_metrics_host, registry=multiprocess_registry()
            )
            log.info(
                "worker metrics on http://%s:%d/metrics", settings.worker_metrics_host, settings.worker_metrics_port
            )
        elif settings.worker_metrics_port:
            log.warning("WORKER_METRICS_PORT needs PROMETHEUS_MULTIPROC_DIR (the pool's processes write there)")

    @worker_process_shutdown.connect(weak=False)
    def _pool_process_ended(pid: int | None = None, **kwargs: Any) -> None:
        process_ended(pid or os.getpid())

    @worker_shutdown.connect(weak=False)
    def _stop_sweeps(**kwargs: Any) -> None:
        stopped.set()

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**kwargs: Any) -> None:
        # A forked pool process must not reuse the parent's database connections.
        with app.app_context():
            db.engine.dispose(close=False)

    return celery_app
