"""The embedded default's sweep, inside the serving process."""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

import pytest

from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index
from tests.utils.settings import REDIS_URL
from tests.utils.stack import wait_for


def test_the_embedded_default_sweeps_inside_the_serving_process(make_app: Any) -> None:
    from backend.indexing.maintenance import start_in_process_sweep

    app = make_app(sweep_interval_s=0.2, sweep_full_interval_s=0.5)
    image_id = upload(app.test_client(), "A", images.png(1)).json["images"][0]["id"]
    index = live_index(app)
    index.delete([image_id])  # a point lost behind the database's back
    stop = start_in_process_sweep(app)
    assert stop is not None
    try:
        wait_for(lambda: index.ids() == {image_id}, 30, "the sweep to put the point back")
    finally:
        stop.set()
    assert start_in_process_sweep(make_app("v2", redis_url=REDIS_URL)) is None


def _nice_values() -> dict[int, int]:
    """Every thread of this process, by its Linux thread id: its nice value."""
    return {int(tid): os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir("/proc/self/task")}


@pytest.mark.skipif(sys.platform != "linux", reason="the nice value is per thread on Linux only")
def test_background_work_in_the_serving_process_yields_the_cpu_to_requests(make_app: Any) -> None:
    import torch

    from backend.indexing.maintenance import start_in_process_sweep
    from backend.worker.enqueue import in_background

    app = make_app(sweep_interval_s=30, background_nice=7)
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = set(_nice_values())
    seen: dict[str, Any] = {}
    done = threading.Event()

    def forward_pass() -> None:  # what a reindex does: torch starts its OpenMP team from this thread
        with torch.inference_mode():
            torch.nn.Conv2d(16, 16, 3)(torch.randn(8, 16, 64, 64))
        seen["mine"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["threads"] = _nice_values()
        done.set()

    forward_pass.name = "forward_pass"  # type: ignore[attr-defined]  # what in_background logs, as a task's
    with app.app_context():
        in_background(forward_pass)
    assert done.wait(60)
    assert seen["mine"] == max(own, 7)
    started = {tid: nice for tid, nice in seen["threads"].items() if tid not in before}
    assert started and all(nice >= 7 for nice in started.values())  # its own and the forward pass's threads
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own  # the request's thread: unchanged

    stop = start_in_process_sweep(app)
    assert stop is not None
    try:
        sweep = next(t for t in threading.enumerate() if t.name == "sweep")
        wait_for(lambda: os.getpriority(os.PRIO_PROCESS, sweep.native_id or 0) >= 7, 10, "the sweep to yield")
    finally:
        stop.set()


def test_a_loaded_model_is_kept_out_of_the_garbage_collectors_full_passes(make_app: Any) -> None:
    """A full collection went over every object of the process holding the GIL (0.4 s with the app and a model):
    what lives as long as the process is frozen once it is loaded, and the next full pass skips it."""
    import gc

    from backend.serving.active import active_collection
    from backend.serving.embedders import embedder_for

    app = make_app("frozen", untrained_seed=7)
    gc.unfreeze()
    with app.app_context():
        from backend.core.extensions import db

        version = active_collection(session=db.session, settings=app.config["SETTINGS"]).model_version
        embedder = embedder_for(app.config["SETTINGS"], version)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the modules, the app, the network
    assert not any(o is embedder for o in gc.get_objects())  # out of every generation a collection scans
