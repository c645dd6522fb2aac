"""Similar-items answers taking turns in a serving process on the embedded store.

Qdrant Edge searches inside the calling thread and holds the GIL while it does, so the answers of one process
are computed one after another whatever its threads. Let its threads compute them all at once and they only
take the GIL from each other: the SQLite driver and the sockets give it up many times an answer, and each
handover to a thread on the other core wakes it first. With 8 connections on 2 cores and 100,000 photos, 8
request threads answered 146 similar-items calls a second, and the same threads taking turns 222
(`bench/query_latency.py --against`, one run). So the similar-items calls (`GET /api/v1/.../similar`, the
storefront's hot path) take turns, SIMILAR_CONCURRENCY at a time, while every other request (a photo search
waiting for the inference thread, an upload, the pages) keeps the process's threads. On the Qdrant server the
search waits on the network without the GIL: no turns there by default.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
HOT_PREFIX = "/api/v1/"
HOT_SUFFIX = "/similar"


def takes_turns(environ: dict[str, Any]) -> bool:
    """A similar-items read: GET (or HEAD) of /api/v1/.../similar."""
    path = environ.get("PATH_INFO", "")
    return (
        environ.get("REQUEST_METHOD") in ("GET", "HEAD") and path.startswith(HOT_PREFIX) and path.endswith(HOT_SUFFIX)
    )


class Turns:
    """WSGI middleware: at most `width` similar-items calls inside `app` at once; other requests pass by."""

    def __init__(self, app: WsgiApp, width: int) -> None:
        self.app = app
        self.width = width
        self._turns = threading.BoundedSemaphore(width)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not takes_turns(environ):
            return self.app(environ, start_response)
        with self._turns:
            # The body (a JSON answer) is read inside the turn, where its work is done, and closed there.
            body = self.app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
