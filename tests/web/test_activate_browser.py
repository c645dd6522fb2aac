"""Activate on the models page of a live embedded server, in chromium, while shoppers' queries run and the sweep
passes: the new model's collection is built beside the live one and switched to, and no query fails."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.browser import browser_page, log_in_to
from tests.utils.server import dresses_on, running_server

pytestmark = pytest.mark.slow

NEW_MODEL = "efficientnet_lite0-imagenet"


def test_activate_from_the_models_page_switches_while_queries_run(tmp_path: Path) -> None:
    # The minute sweep every second: before, any query or sweep retired the collection being built.
    settings = {"SWEEP_INTERVAL_S": "1"}
    with running_server(tmp_path, production=True, env=settings) as (base, token), browser_page(base) as (page, _):
        ids = dresses_on(base, token, 6)
        before = httpx.get(f"{base}/api/v1/stats", timeout=10).json()["model"]["version"]
        assert before != NEW_MODEL

        failures: list[tuple[int, str]] = []
        answered: list[str] = []
        stop = threading.Event()

        def shoppers() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    response = client.get(f"/api/v1/products/{ids[n % len(ids)]}/similar?limit=5")
                    if response.status_code != 200:
                        failures.append((response.status_code, response.text[:200]))
                    else:
                        answered.append(response.json()["model_version"])
                    n += 1
                    time.sleep(0.05)

        loop = threading.Thread(target=shoppers, daemon=True)
        loop.start()
        try:
            log_in_to(page, base, token, "/admin/models")
            page.on("dialog", lambda dialog: dialog.accept())  # "Reindex every photo with ...?"
            row = page.locator("#models tr", has_text=NEW_MODEL)
            row.locator("button", has_text="Activate").click()
            page.wait_for_load_state()
            assert "Reindexing every photo" in page.inner_text("body")
            deadline = time.monotonic() + 180
            while page.inner_text("#active-model") != NEW_MODEL:
                assert time.monotonic() < deadline, page.inner_text("body")
                time.sleep(1)
                page.goto("/admin/models")
            time.sleep(3)  # past a few more sweeps, on the new collection
        finally:
            stop.set()
            loop.join(timeout=60)
        assert failures == []
        assert answered[0] == before and answered[-1] == NEW_MODEL  # answered throughout, by one model or the other
        assert httpx.get(f"{base}/api/v1/stats", timeout=10).json()["model"]["version"] == NEW_MODEL
