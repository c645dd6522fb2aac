"""Prometheus metrics: request latency by route and status, photos by status, index points, embedding speed.

One process keeps its own figures. With PROMETHEUS_MULTIPROC_DIR set before the process starts (the client
library's multiprocess mode: each process writes its figures to files there), `/metrics` adds up every process
that shares the folder: the serving processes of `serve --production --workers N`, and a Celery worker's pool
processes on the worker's own port (WORKER_METRICS_PORT). The folder is emptied when the processes that share it
start (`serve`, `worker`); a process that ends is marked dead, so its gauges drop out and its counts stay.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from flask import g, request
from flask.wrappers import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
log = logging.getLogger(__name__)
if os.environ.get(MULTIPROC_ENV):  # the library writes there as soon as the metrics below are defined
    Path(os.environ[MULTIPROC_ENV]).mkdir(parents=True, exist_ok=True)

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "lookalike_http_request_duration_seconds",
    "HTTP request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
# Gauges in multiprocess mode: the figure the last process to set it wrote (every process would give the same).
PHOTOS = Gauge(
    "lookalike_photos", "Photos by indexing status", ["status"], registry=REGISTRY, multiprocess_mode="mostrecent"
)
INDEX_POINTS = Gauge(
    "lookalike_index_points", "Points in the active collection", registry=REGISTRY, multiprocess_mode="mostrecent"
)
EMBED_BATCH_SECONDS = Histogram(
    "lookalike_embed_batch_seconds",
    "Seconds to embed one batch of photos (decode excluded)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
EMBEDDED_PHOTOS = Counter("lookalike_embedded_photos", "Photos embedded by this process", registry=REGISTRY)
EVENTS_RECORDED = Counter("lookalike_events_recorded", "Shopper events accepted, by type", ["type"], registry=REGISTRY)
# By the field at fault (the first one named, without its position in the batch): a bounded set of labels.
EVENTS_REFUSED = Counter(
    "lookalike_events_refused", "Shopper event bodies refused, by field", ["field"], registry=REGISTRY
)
EMBED_PHOTOS_PER_SECOND = Gauge(
    "lookalike_embed_photos_per_second",
    "Photos per second of the last embedded batch",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)


# The methods HTTP defines: any other (a client may send any token) counts as "other", so that made-up methods
# cannot add series without bound (5,000 made-up methods grew /metrics from 43 KB to 8.85 MB).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})


def start_timer() -> None:
    g.request_started = time.perf_counter()


def observe_request(response: Response) -> Response:
    started = g.pop("request_started", None)
    if started is not None:
        # The route's template, never the raw path: one series per route, whatever the ids.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in METHODS else "other"
        REQUEST_SECONDS.labels(route, method, str(response.status_code)).observe(time.perf_counter() - started)
    return response


def observe_embedding(photos: int, seconds: float) -> None:
    EMBED_BATCH_SECONDS.observe(seconds)
    EMBEDDED_PHOTOS.inc(photos)
    if seconds > 0:
        EMBED_PHOTOS_PER_SECOND.set(photos / seconds)


def multiprocess_dir() -> Path | None:
    """The folder of the library's multiprocess mode, when this process runs in it."""
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder else None


def exposition() -> bytes:
    """The metrics in Prometheus' text format: this process's, or every process's in multiprocess mode."""
    return generate_latest(REGISTRY if multiprocess_dir() is None else multiprocess_registry())


def multiprocess_registry() -> CollectorRegistry:
    """A registry that reads every process's files in the multiprocess folder."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def start_multiprocess_run() -> None:
    """Before the processes that share the folder start: the files of an earlier run removed (this process's
    own, made when its metrics were defined, stay: it may serve)."""
    folder = multiprocess_dir()
    if folder is None:
        return  # (the folder itself is made where the metrics are defined, above)
    own = f"_{os.getpid()}.db"
    for path in folder.glob("*.db"):
        if not path.name.endswith(own):
            path.unlink(missing_ok=True)
    log.info("metrics: multiprocess mode in %s", folder)


def process_ended(pid: int) -> None:
    """A process that shared the folder has ended: its live gauges drop out (its counts stay)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(pid)
