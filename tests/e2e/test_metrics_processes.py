"""`/metrics` under `serve --production --workers N` adds up every serving process (Prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx

from tests.utils.server import LOOKALIKE, free_port
from tests.utils.settings import TOKEN

REQUESTS = re.compile(
    r'^lookalike_http_request_duration_seconds_count\{[^}]*route="/api/v1/products"[^}]*\} (\S+)$', re.MULTILINE
)


def serve_and_count(tmp_path: Path, env: dict[str, str], requests: int) -> float:
    """Start two serving processes, send `requests` list calls on fresh connections, stop: the list calls that
    /metrics counts."""
    port = free_port()
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [LOOKALIKE, "serve", "--production", "--port", str(port), "--workers", "2", "--threads", "2"],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/api/v1/products", timeout=2)  # not counted: the count comes from /metrics
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.3)
        for _ in range(requests):
            with httpx.Client() as client:  # a new connection each: the kernel hands them to either process
                assert client.get(f"{base}/api/v1/products").status_code == 200
        text = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).text
    finally:
        process.terminate()
        process.wait(timeout=30)
    counted = REQUESTS.search(text)
    assert counted, text[-2000:]
    return float(counted.group(1))


def test_metrics_count_the_requests_of_every_serving_process(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "QDRANT_PATH"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        ADMIN_TOKEN=TOKEN,
        # several serving processes need the Qdrant server; the list calls never ask it (nothing listens here)
        QDRANT_URL="http://127.0.0.1:9",
        PROMETHEUS_MULTIPROC_DIR=str(folder),
        DEFAULT_MODEL="untrained",
        DEVICE="cpu",
    )
    subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    first = serve_and_count(tmp_path, env, 30)
    assert first == 31  # every process's, the first call included (one process would show about half)
    # A new run starts from nothing: the folder's files of the last run are removed when it starts.
    second = serve_and_count(tmp_path, env, 10)
    assert second == 11
