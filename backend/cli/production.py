"""Production serving under gunicorn, started from `lookalike serve --production`."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from backend.app import create_app
from backend.config import Settings
from backend.pipeline.maintenance import start_in_process_sweep


def worker_layout(settings: Settings, workers: int | None, threads: int | None) -> tuple[int, int]:
    """Embedded store: one process (it holds the store's lock), with threads. Qdrant server: several processes."""
    if settings.embedded_index:
        if workers not in (None, 1):
            raise ValueError("the embedded Qdrant store is locked to one process: use --workers 1, or set QDRANT_URL")
        return 1, threads or 8
    return workers or 4, threads or 4


class ProductionServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with the app built once per worker from the same factory."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        app = create_app(self.settings)  # in the gunicorn worker process, the one that holds the store
        start_in_process_sweep(app)
        return app


def run(settings: Settings, *, host: str, port: int, workers: int | None, threads: int | None) -> None:
    processes, per_process = worker_layout(settings, workers, threads)
    ProductionServer(
        settings,
        {
            "bind": f"{host}:{port}",
            "workers": processes,
            "threads": per_process,
            "worker_class": "gthread",
            "timeout": 120,  # an upload embeds its photos in-process in embedded mode
            "graceful_timeout": 30,
            "keepalive": 5,
            "accesslog": "-",
            "errorlog": "-",
        },
    ).run()
