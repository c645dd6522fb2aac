"""The Celery app, bound to a Flask app so that every task runs inside its app context."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask

from backend.config import Settings


def celery_init_app(app: Flask) -> Celery:
    settings: Settings = app.config["SETTINGS"]

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask, include=["workers.tasks"])
    celery_app.conf.update(
        # Without a broker the same tasks run in-process, synchronously, when enqueued.
        task_always_eager=settings.tasks_in_process,
        task_eager_propagates=True,
        broker_url=settings.redis_url or "memory://",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes={"lookalike.embed_images": {"queue": "embed"}},
        broker_connection_retry_on_startup=True,
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app
