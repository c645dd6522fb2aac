"""The pipeline's commands: stats, sweep, worker, Flower, beat, and import into the full stack."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from backend.core.extensions import db
from backend.db.models import ProductImage
from tests.utils import images
from tests.utils.api import upload
from tests.utils.cli import cli_runner
from tests.utils.server import LOOKALIKE, free_port
from tests.utils.settings import REDIS_URL
from tests.utils.stack import wait_for


def test_stats_and_worker_commands(make_app: Any) -> None:
    app = make_app()
    upload(app.test_client(), "A", images.png(1), images.png(2))
    runner = cli_runner(app)
    stats = json.loads(runner.invoke(args=["stats"]).output)
    assert stats == app.test_client().get("/api/v1/stats").json  # one shape for the command and the API
    assert stats["images"] == {"pending": 0, "indexed": 2, "failed": 0} and stats["products"] == 1
    assert stats["index"]["points"] == 2 and stats["model"]["version"].startswith("untrained-")
    swept = runner.invoke(args=["sweep"])
    assert swept.exit_code == 0 and json.loads(swept.output)["missing_points"] == 0
    refused = runner.invoke(args=["worker"])
    assert refused.exit_code == 2 and "REDIS_URL is not set" in refused.output
    edge = cli_runner(make_app("var2", redis_url=REDIS_URL))
    refused = edge.invoke(args=["worker", "-c", "2"])
    assert refused.exit_code == 2 and "allows one worker process" in refused.output


def test_flower_needs_basic_auth_and_binds_to_loopback(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "QDRANT_URL"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"), REDIS_URL=REDIS_URL, FLOWER_BASIC_AUTH="ops:s3cret-pass", ADMIN_TOKEN="t" * 20
    )
    log = (tmp_path / "flower.log").open("w")
    process = subprocess.Popen(
        [LOOKALIKE, "flower", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    try:

        def up() -> bool:
            try:
                httpx.get(url, timeout=1)
                return True
            except httpx.TransportError:
                assert process.poll() is None, (tmp_path / "flower.log").read_text()
                return False

        wait_for(up, 60, "Flower to listen", 0.3)
        assert httpx.get(url, timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        page = httpx.get(url, auth=("ops", "s3cret-pass"), timeout=5)
        assert page.status_code == 200 and "Flower" in page.text
        assert httpx.get(url + "metrics", timeout=5).status_code == 401
        metrics = httpx.get(url + "metrics", auth=("ops", "s3cret-pass"), timeout=5)
        assert metrics.status_code == 200 and "flower_" in metrics.text
        listening = subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True, text=True).stdout
        assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening and f"*:{port}" not in listening
    finally:
        process.terminate()
        process.wait(timeout=20)
        time.sleep(0.1)


def test_beat_sends_the_sweep_on_schedule(tmp_path: Path) -> None:
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "QDRANT_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), REDIS_URL=REDIS_URL, SWEEP_INTERVAL_S="1", ADMIN_TOKEN="t" * 20)
    log = tmp_path / "beat.log"
    with log.open("w") as out:
        process = subprocess.Popen([LOOKALIKE, "beat"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: connection.llen("index") >= 2, 30, "two sweeps on the index queue", 0.2)
    finally:
        process.terminate()
        process.wait(timeout=20)
        connection.flushdb()
    assert "Sending due task sweep (lookalike.sweep)" in log.read_text()


def test_bulk_import_into_the_full_stack_enqueues_chunks_and_returns(tmp_path: Path, make_app: Any) -> None:
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    tree = tmp_path / "photos"
    for n in range(7):
        (tree / ("hat" if n % 2 else "shoe")).mkdir(parents=True, exist_ok=True)
        (tree / ("hat" if n % 2 else "shoe") / f"{n}.png").write_bytes(images.png(n))
    app = make_app(redis_url=REDIS_URL, embed_batch_size=3)
    try:
        result = cli_runner(app).invoke(args=["import", str(tree)])
        assert result.exit_code == 0, result.output
        assert "7 rows: 7 created, 0 updated" in result.output and "enqueued 7 photos" in result.output
        assert connection.llen("embed") == 3  # tasks of 3, 3 and 1 photos, nothing embedded yet
        with app.app_context():
            rows = db.session.query(ProductImage).all()
            assert {r.status for r in rows} == {"pending"} and all(r.enqueued_at for r in rows)
    finally:
        connection.flushdb()
