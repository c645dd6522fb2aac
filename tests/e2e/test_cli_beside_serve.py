"""`lookalike import` while `lookalike serve` holds the embedded store: one line naming the fix, nothing written,
and the same command works once the server has stopped; a second `serve` on the same VAR_DIR does not start."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import httpx

from tests.utils.datasets import photos_of
from tests.utils.server import LOOKALIKE, dresses_on, free_port, running_server

CHALLENGER = "efficientnet_lite0-imagenet"


def products_in(var: Path) -> int:
    with sqlite3.connect(var / "lookalike.db") as connection:
        return int(connection.execute("SELECT count(*) FROM products").fetchone()[0])


def test_import_beside_a_running_server_stops_before_writing_and_a_retry_works(tmp_path: Path) -> None:
    folder = tmp_path / "photos" / "dress"
    folder.mkdir(parents=True)
    for path in photos_of("dress", 3):
        (folder / path.name).write_bytes(path.read_bytes())
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), EMBED_IMAGE_SIZE="64", DEFAULT_MODEL="untrained", DEVICE="cpu")

    def run_import() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LOOKALIKE, "import", str(tmp_path / "photos")], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip

    with running_server(tmp_path):
        refused = run_import()
        assert refused.returncode == 1, refused.stderr
        lines = [line for line in refused.stderr.splitlines() if line.strip() and "Traceback" not in line]
        assert len([line for line in lines if line.startswith("Error:")]) == 1 and "Traceback" not in refused.stderr
        assert "held by another process" in refused.stderr and "nothing was imported" in refused.stderr
        assert products_in(tmp_path / "var") == 0
        stats = subprocess.run(
            [LOOKALIKE, "stats"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )  # what it can read, and why not the index
        assert stats.returncode == 0, stats.stderr
        shown = json.loads(stats.stdout)
        assert shown["products"] == 0 and shown["index"]["points"] is None
        assert "locked to one process" in shown["index"]["error"]
        second = subprocess.run(
            [LOOKALIKE, "serve", "--port", str(free_port())], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert second.returncode == 1 and "this one did not start" in second.stderr, second.stderr
    done = run_import()
    assert done.returncode == 0, done.stderr
    assert "3 rows: 3 created" in done.stdout and '"indexed": 3' in done.stdout
    assert products_in(tmp_path / "var") == 3


def test_an_experiment_started_from_the_command_line_beside_a_running_server(tmp_path: Path) -> None:
    """The command builds the challenger's shard beside the server's and lets go of it; the server then answers
    each visitor from its arm's shard. Stopping on the challenger needs its shard, which the server now holds:
    refused with the way that works; keeping the active arm needs none."""
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), EMBED_IMAGE_SIZE="64", DEFAULT_MODEL="untrained", DEVICE="cpu")

    def lookalike(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LOOKALIKE, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)

    with running_server(tmp_path) as (base, token):
        ids = dresses_on(base, token, 4)
        before = httpx.get(f"{base}/api/v1/stats", timeout=10).json()["model"]["version"]
        started = lookalike("experiment", "start", "--arm", f"A={before}:50", "--arm", f"B={CHALLENGER}:50")
        assert started.returncode == 0, started.stderr
        answers = set()
        for n in range(16):
            response = httpx.get(f"{base}/api/v1/products/{ids[n % 4]}/similar?visitor=v-{n:06d}", timeout=30)
            assert response.status_code == 200, response.text
            answers.add((response.json()["arm"], response.json()["model_version"]))
        assert answers == {("A", before), ("B", CHALLENGER)}
        refused = lookalike("experiment", "stop", "--keep", "B")
        assert refused.returncode == 1 and "models page" in refused.stderr, refused.stderr
        kept = lookalike("experiment", "stop", "--keep", "A")
        assert kept.returncode == 0, kept.stderr
        after = httpx.get(f"{base}/api/v1/products/{ids[0]}/similar?visitor=v-000001", timeout=30).json()
        assert after["model_version"] == before and "arm" not in after
