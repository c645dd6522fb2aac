"""A serving process runs its requests' forward passes and its model loads on one inference thread, so that no
request thread gets an OpenMP team of its own (backend.serving.embedders explains why)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from backend.serving import embedders
from backend.serving.embedders import on_inference_thread, serve_inference_on_one_thread
from ml.embedder import Embedder
from tests.utils import images
from tests.utils.api import upload


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As `lookalike serve` sets it; the process's embedders loaded afresh, on that thread."""
    monkeypatch.setattr(embedders, "_embedders", {})
    serve_inference_on_one_thread()
    yield
    embedders._serving.clear()


def spy_on_threads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the threads that ran Embedder.describe (the real one runs)."""
    names: list[str] = []
    real = Embedder.describe

    def describe(self: Embedder, photos: Any) -> Any:
        names.append(threading.current_thread().name)
        return real(self, photos)

    monkeypatch.setattr(Embedder, "describe", describe)
    return names


def search(client: Any, seed: int) -> int:
    data = {"image": (io.BytesIO(images.png(seed)), "q.png")}
    return int(client.post("/api/v1/search", data=data, content_type="multipart/form-data").status_code)


def test_photo_searches_from_several_request_threads_run_on_one_inference_thread(
    app: Any, client: Any, serving: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert upload(client, "P0", images.png(1)).status_code == 201
    names = spy_on_threads(monkeypatch)
    statuses: list[int] = []
    requests = [threading.Thread(target=lambda n=n: statuses.append(search(app.test_client(), n))) for n in range(4)]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert statuses == [200] * 4
    assert len(names) == 4 and len(set(names)) == 1 and names[0].startswith("inference")


def test_outside_a_serving_process_the_caller_runs_its_own_forward_pass(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert upload(client, "P0", images.png(1)).status_code == 201
    names = spy_on_threads(monkeypatch)
    assert search(client, 2) == 200
    assert names == [threading.current_thread().name]


def test_the_inference_threads_failure_is_raised_in_the_caller(serving: None) -> None:
    def fail() -> None:
        raise ZeroDivisionError("in the forward pass")

    with pytest.raises(ZeroDivisionError, match="in the forward pass"):
        on_inference_thread(fail)
    assert on_inference_thread(lambda: threading.current_thread().name).startswith("inference")
    # work on that thread that asks for it again runs there at once, rather than waiting on itself
    nested = on_inference_thread(lambda: on_inference_thread(lambda: threading.current_thread().name))
    assert nested.startswith("inference")
