"""Work that dies with its process: an import in a thread of the embedded server killed with it, and a reindex
killed mid-build. The next server's sweep fails the import with the reason and drops the half-built collection."""

from __future__ import annotations

import io
import os
import re
import signal
import sqlite3
import subprocess
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from scripts.harness import serving
from tests.utils.images import encode, noise
from tests.utils.server import LOOKALIKE


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"), EMBED_IMAGE_SIZE="64", DEFAULT_MODEL="untrained", DEVICE="cpu",
        PYTHONUNBUFFERED="1", ADMIN_TOKEN="t" * 32, SWEEP_INTERVAL_S="1", DEAD_WORK_GRACE_S="0",
    )  # fmt: skip
    return env


@contextmanager
def server(tmp_path: Path, env: dict[str, str], log_name: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    with serving(env, cwd=tmp_path, log_path=tmp_path / log_name, timeout_s=60) as running:
        yield running.base, running.process


def wait_for(check: object, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


def test_an_import_killed_with_its_server_is_failed_by_the_next_sweep(tmp_path: Path) -> None:
    env = environment(tmp_path)
    auth = {"Authorization": f"Bearer {env['ADMIN_TOKEN']}"}
    photos = io.BytesIO()
    rows = ["sku,title,category,images"]
    with zipfile.ZipFile(photos, "w") as archive:
        for n in range(600):
            archive.writestr(f"p{n}.png", encode(noise(n, 48)))
            rows.append(f"S{n:04d},Item {n},dress,p{n}.png")
    feed = ("\n".join(rows) + "\n").encode()
    with server(tmp_path, env, "first.log") as (base, process):
        files = {"feed": ("feed.csv", feed, "text/csv"), "photos": ("photos.zip", photos.getvalue(), "application/zip")}
        started = httpx.post(f"{base}/api/v1/imports", files=files, headers=auth, timeout=60)
        assert started.status_code == 202, started.text
        import_id = started.json()["id"]

        def under_way() -> bool:
            body = httpx.get(f"{base}/api/v1/imports/{import_id}", headers=auth, timeout=10).json()
            return body["state"] == "running" and body["rows_done"] > 0

        wait_for(under_way)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    with server(tmp_path, env, "second.log") as (base, _):

        def failed() -> bool:
            body = httpx.get(f"{base}/api/v1/imports/{import_id}", headers=auth, timeout=10).json()
            return bool(body["state"] == "failed")

        wait_for(failed, timeout_s=30)
        body = httpx.get(f"{base}/api/v1/imports/{import_id}", headers=auth, timeout=10).json()
        assert re.search(r"the process running it stopped .*send the feed again", body["error"]), body["error"]
        assert 0 < body["rows_done"] < 600


def test_a_reindex_killed_mid_build_is_dropped_by_the_next_sweep(tmp_path: Path) -> None:
    env = environment(tmp_path)
    auth = {"Authorization": f"Bearer {env['ADMIN_TOKEN']}"}
    with server(tmp_path, env, "first.log") as (base, _):
        for n in range(40):
            files = [("images", (f"p{n}.png", encode(noise(1000 + n, 48)), "image/png"))]
            data = {"sku": f"R{n}", "title": f"Item {n}", "category": "dress"}
            assert (
                httpx.post(f"{base}/api/v1/products", data=data, files=files, headers=auth, timeout=60).status_code
                == 201
            )
    qdrant = tmp_path / "var" / "qdrant"
    before = {p.name for p in qdrant.iterdir()}
    # A reindex in its own process onto the real default model (224 px, one photo a batch: seconds of work),
    # killed as soon as its collection is on disk.
    reindex = subprocess.Popen(
        [LOOKALIKE, "reindex", "--model", "efficientnet_lite0-imagenet"], env={**env, "EMBED_BATCH_SIZE": "1"},
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len({p.name for p in qdrant.iterdir()} - before) != 1:
        assert reindex.poll() is None and time.monotonic() < deadline, "the reindex ended before building"
        time.sleep(0.02)
    reindex.send_signal(signal.SIGKILL)
    reindex.wait(timeout=30)
    (building,) = {p.name for p in qdrant.iterdir()} - before
    with sqlite3.connect(tmp_path / "var" / "lookalike.db") as connection:
        state = connection.execute("SELECT state FROM index_collections WHERE name = ?", (building,)).fetchone()
    assert state == ("building",)  # killed mid-build, not after its switch
    with server(tmp_path, env, "second.log") as (base, _):
        # Within a sweep or two; a shard half made (killed while it was created) once untouched for 20 s.
        wait_for(lambda: not (qdrant / building).exists(), timeout_s=90)
        assert {p.name for p in qdrant.iterdir()} == before  # the live collection stays
        assert httpx.get(f"{base}/api/v1/products/1/similar", timeout=10).status_code == 200
    assert "is dead" in (tmp_path / "second.log").read_text()
