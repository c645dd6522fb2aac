"""The embedded default's sweep, inside the serving process."""

from __future__ import annotations

from typing import Any

from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index
from tests.utils.settings import REDIS_URL
from tests.utils.stack import wait_for


def test_the_embedded_default_sweeps_inside_the_serving_process(make_app: Any) -> None:
    from backend.pipeline.maintenance import start_in_process_sweep

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
