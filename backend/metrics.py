"""Prometheus metrics: request latency by route and status, photos by status, index points, embedding speed.

Each process keeps its own figures: the API's `/metrics` shows its requests and, in the embedded default,
its embedding; Celery workers' task figures are in Flower's `/metrics`.
"""

from __future__ import annotations

import time

from flask import g, request
from flask.wrappers import Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "lookalike_http_request_duration_seconds",
    "HTTP request latency by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
PHOTOS = Gauge("lookalike_photos", "Photos by indexing status", ["status"], registry=REGISTRY)
INDEX_POINTS = Gauge("lookalike_index_points", "Points in the active collection", registry=REGISTRY)
EMBED_BATCH_SECONDS = Histogram(
    "lookalike_embed_batch_seconds",
    "Seconds to embed one batch of photos (decode excluded)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
EMBEDDED_PHOTOS = Counter("lookalike_embedded_photos", "Photos embedded by this process", registry=REGISTRY)
EMBED_PHOTOS_PER_SECOND = Gauge(
    "lookalike_embed_photos_per_second", "Photos per second of the last embedded batch", registry=REGISTRY
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
