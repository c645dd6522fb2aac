"""Similar-items calls take turns in a serving process on the embedded store; other requests pass them by."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Flask

from backend.app import create_app
from backend.core.turns import Turns, takes_turns
from tests.utils.settings import make_settings

WAIT_S = 5.0


def _environ(path: str, method: str = "GET") -> dict[str, Any]:
    return {"REQUEST_METHOD": method, "PATH_INFO": path}


class Gated:
    """A WSGI app whose calls to a path ending in /blocked wait until released; it counts who is inside."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.set()
        try:
            if environ["PATH_INFO"].endswith("/blocked/similar"):
                assert self.release.wait(WAIT_S)
            start_response("200 OK", [])
            return _Body(self)
        finally:
            with self._lock:
                self.inside -= 1


class _Body(list[bytes]):
    def __init__(self, app: Gated) -> None:
        super().__init__([b"ok"])
        self.app = app

    def close(self) -> None:
        self.app.closed += 1


def _in_thread(app: Turns, path: str, done: list[bytes]) -> threading.Thread:
    thread = threading.Thread(target=lambda: done.extend(app(_environ(path), lambda *a: None)), daemon=True)
    thread.start()
    return thread


def test_only_similar_items_reads_take_turns() -> None:
    assert takes_turns(_environ("/api/v1/products/7/similar"))
    assert takes_turns(_environ("/api/v1/products/sku/a/b/similar", "HEAD"))
    assert takes_turns(_environ("/api/v1/images/3/similar"))
    assert not takes_turns(_environ("/api/v1/products/7/similar", "POST"))
    assert not takes_turns(_environ("/api/v1/search", "POST"))
    assert not takes_turns(_environ("/api/v1/products/7"))
    assert not takes_turns(_environ("/products/7/similar"))  # a page, not the API


def test_a_second_similar_call_waits_for_the_turn_and_other_requests_do_not() -> None:
    inner = Gated()
    app = Turns(inner, 1)
    first: list[bytes] = []
    holder = _in_thread(app, "/api/v1/products/1/blocked/similar", first)
    assert inner.entered.wait(WAIT_S)
    inner.entered.clear()

    second: list[bytes] = []
    waiting = _in_thread(app, "/api/v1/products/2/similar", second)
    # Another kind of request is answered while the turn is held.
    assert list(app(_environ("/api/v1/products/3"), lambda *a: None)) == [b"ok"]
    inner.entered.clear()
    waiting.join(0.3)
    assert waiting.is_alive() and second == [] and not inner.entered.is_set()

    inner.release.set()
    holder.join(WAIT_S)
    waiting.join(WAIT_S)
    assert first == [b"ok"] and second == [b"ok"]
    assert inner.closed == 2  # the two similar bodies closed inside their turns (the server closes the other)


def test_two_turns_let_two_similar_calls_in_at_once() -> None:
    inner = Gated()
    app = Turns(inner, 2)
    done: list[bytes] = []
    threads = [_in_thread(app, f"/api/v1/products/{n}/blocked/similar", done) for n in range(4)]
    for _ in range(50):
        if inner.inside == 2:
            break
        threading.Event().wait(0.02)
    assert inner.inside == 2  # two inside, the other two waiting
    inner.release.set()
    for thread in threads:
        thread.join(WAIT_S)
    assert done == [b"ok"] * 4 and inner.most_inside == 2


def _turns_of(app: Flask) -> int:
    return app.wsgi_app.width if isinstance(app.wsgi_app, Turns) else 0


def test_the_embedded_store_takes_turns_one_at_a_time_and_the_qdrant_server_does_not(tmp_path: Path) -> None:
    assert _turns_of(create_app(make_settings(tmp_path / "a"))) == 1
    assert _turns_of(create_app(make_settings(tmp_path / "b", qdrant_url="http://127.0.0.1:6333"))) == 0
    assert _turns_of(create_app(make_settings(tmp_path / "c", similar_concurrency=3))) == 3
    assert _turns_of(create_app(make_settings(tmp_path / "d", similar_concurrency=0))) == 0
