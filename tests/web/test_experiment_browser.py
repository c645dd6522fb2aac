"""A model A/B test on a live embedded server, driven from the models page in chromium while shoppers with
their own visitor ids query and the sweep passes: both arms answer, each with its model, and stopping keeps the
winner, with no failed query from start to end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.utils.browser import browser_page, log_in_to
from tests.utils.server import dresses_on, running_server

pytestmark = pytest.mark.slow

CHALLENGER = "efficientnet_lite0-imagenet"
VISITORS = [f"shopper-{n:04d}" for n in range(12)]


def test_an_experiment_from_the_models_page_answers_each_arm_and_stops_on_the_winner(tmp_path: Path) -> None:
    settings = {"SWEEP_INTERVAL_S": "1"}
    with running_server(tmp_path, production=True, env=settings) as (base, token), browser_page(base) as (page, _):
        ids = dresses_on(base, token, 6)
        before = httpx.get(f"{base}/api/v1/stats", timeout=10).json()["model"]["version"]
        assert before != CHALLENGER

        failures: list[tuple[int, str]] = []
        answers: list[tuple[str | None, str, str | None]] = []  # (arm in the body, model, X-Lookalike-Arm)
        stop = threading.Event()

        def shoppers() -> None:
            with httpx.Client(base_url=base, timeout=30) as client:
                n = 0
                while not stop.is_set():
                    visitor = VISITORS[n % len(VISITORS)]
                    response = client.get(f"/api/v1/products/{ids[n % len(ids)]}/similar?limit=4&visitor={visitor}")
                    if response.status_code != 200:
                        failures.append((response.status_code, response.text[:200]))
                    else:
                        body = response.json()
                        answers.append(
                            (body.get("arm"), body["model_version"], response.headers.get("X-Lookalike-Arm"))
                        )
                    n += 1
                    time.sleep(0.05)

        loop = threading.Thread(target=shoppers, daemon=True)
        loop.start()
        try:
            log_in_to(page, base, token, "/admin/models")
            assert page.input_value("#start-experiment input[name=arm] >> nth=0") == f"A={before}:50"
            page.fill("#start-experiment input[name=arm] >> nth=1", f"B={CHALLENGER}:50")
            page.click("#start-experiment button[type=submit]")
            page.wait_for_load_state()
            assert "Starting the experiment" in page.inner_text("body")
            deadline = time.monotonic() + 180
            while not page.locator("#experiment").count():
                assert time.monotonic() < deadline, page.inner_text("body")
                time.sleep(1)
                page.goto("/admin/models")
            assert CHALLENGER in page.inner_text("#experiment")
            time.sleep(0.5)  # a query in flight at the start may have read the state before it
            started = len(answers)
            deadline = time.monotonic() + 60
            while {arm for arm, _, _ in answers[started:]} != {"A", "B"}:
                assert time.monotonic() < deadline, Counter(answers[started:])
                time.sleep(0.2)
            during = answers[started:]
            page.on("dialog", lambda dialog: dialog.accept())  # "Stop the experiment and keep this arm?"
            page.select_option("#stop-experiment select[name=keep]", "B")
            page.click("#stop-experiment button[type=submit]")
            page.wait_for_load_state()
            assert "arm B kept" in page.inner_text("body")
            assert page.inner_text("#active-model") == CHALLENGER
            time.sleep(0.5)
            stopped = len(answers)
            time.sleep(3)  # past a few more sweeps, and past the grace of the loser's collection
        finally:
            stop.set()
            loop.join(timeout=60)
        assert failures == []
        # During the experiment: each visitor's arm, with its model, in the body and the header alike.
        assert {(arm, model) for arm, model, _ in during} == {("A", before), ("B", CHALLENGER)}
        assert all(arm == header for arm, _, header in during)
        assert answers[stopped:] and {(arm, model) for arm, model, _ in answers[stopped:]} == {(None, CHALLENGER)}
        assert httpx.get(f"{base}/api/v1/stats", timeout=10).json()["model"]["version"] == CHALLENGER
