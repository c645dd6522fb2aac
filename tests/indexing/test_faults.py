"""Fault tests with real processes: a private Redis, PostgreSQL, `lookalike worker` with the prefork pool.

The embedded Qdrant Edge store is locked to one process: the worker owns it while it runs, and the
test inspects it after the worker has stopped.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.core.extensions import db
from backend.db.models import ProductImage
from backend.index import close_all
from backend.worker.tasks import embed_images
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index
from tests.utils.settings import AUTH
from tests.utils.stack import Stack, wait_for

pytestmark = pytest.mark.faults


def upload_products(stack: Stack, count: int, photos: int, *, start: int = 0) -> list[int]:
    client = stack.app.test_client()
    ids = []
    for n in range(start, start + count):
        response = upload(client, f"P{n}", *(images.png(n * 100 + k) for k in range(photos)))
        assert response.status_code == 201, response.json
        ids.extend(image["id"] for image in response.json["images"])
    return ids


def points(stack: Stack) -> set[int]:
    """Every point id of the active collection: call only when no worker holds the store."""
    try:
        return live_index(stack.app).ids()
    finally:
        close_all()


def sweep(stack: Stack) -> dict[str, Any]:
    """`lookalike sweep`: a worker runs it and the command prints its report."""
    result = stack.cli("sweep", "--timeout", "60")
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_kill_9_of_the_worker_group_mid_batch_then_restart(stack: Stack) -> None:
    """Every photo ends indexed exactly once: one point each, none failed. The restarted worker's own quick
    sweep finds what its dead process held: no sweep command, no beat, no wait for the visibility timeout."""
    ids = upload_products(stack, 12, 4)  # 12 tasks of 4 photos
    worker = stack.start_worker(env={"EMBED_IMAGE_SIZE": "64"})

    def mid_batch() -> bool:
        # Some photos indexed and a batch claimed right now: the kill lands inside a task (killed between two
        # tasks, the worker would lose nothing and the test would prove nothing).
        rows = stack.rows()
        return 0 < sum(r.status == "indexed" for r in rows) < len(ids) and any(r.claimed_by for r in rows)

    wait_for(mid_batch, 60, "a first batch to be indexed and the next one claimed", 0.005)
    worker.kill()
    assert stack.count("pending") > 0
    restarted = stack.start_worker(env={"PENDING_STALE_S": "600"})
    stack.wait_all("indexed", 120)
    assert "sweep repaired" in restarted.text()  # its start-up sweep, not a command
    stack.stop_workers()
    assert points(stack) == set(ids)
    assert all(row.status == "indexed" and row.attempts == 0 and row.claimed_by is None for row in stack.rows())


def test_redis_restart_mid_stream(stack: Stack) -> None:
    """The worker reconnects and consumes again; the sweep re-enqueues what the restart lost."""
    ids = upload_products(stack, 16, 4)
    worker = stack.start_worker()
    wait_for(lambda: 0 < stack.count("indexed") < len(ids) - 8, 60, "part of the stream to be indexed", 0.02)
    stack.redis.stop()
    time.sleep(1)
    stack.redis.start()  # empty: no persistence, the queued tasks are gone
    more = upload_products(stack, 2, 4, start=100)  # new uploads reach the restarted Redis
    time.sleep(2.5)
    report = sweep(stack)  # answered by the same worker process, reconnected
    assert report["requeued_pending"] > 0
    stack.wait_all("indexed", 120)
    assert worker.process.poll() is None, "the worker survived the restart"
    stack.stop_workers()
    assert points(stack) == set(ids + more)


def test_vector_store_unavailable_then_sweep_recovers(stack: Stack) -> None:
    """Retries with backoff, then `failed` with the reason; the sweep recovers the photos once the store is back."""
    held = live_index(stack.app)  # this process holds the Edge shard: the worker cannot open it
    worker = stack.start_worker()
    ids = upload_products(stack, 2, 2)
    stack.wait_all("failed", 60)
    rows = stack.rows()
    assert all(r.error and r.error.startswith("vector index unavailable") for r in rows), stack.summary()
    assert all("after 3 tries" in (r.error or "") and r.failure_kind == "transient" for r in rows)
    assert all(r.attempts == 0 and r.claimed_by is None for r in rows)  # not the photos' fault
    assert len(re.findall(r"Retry in", worker.text())) >= 2 * 2  # two tasks, two retries each
    held.count()
    close_all()  # the store is back
    report = sweep(stack)
    assert report["retried_failed"] == len(ids)
    stack.wait_all("indexed", 60)
    stack.stop_workers()
    assert points(stack) == set(ids)


def test_poison_photo_fails_after_bounded_attempts(stack: Stack) -> None:
    """A photo that kills its worker process each time ends failed after MAX_ATTEMPTS; its batch-mates are indexed."""
    poison = images.png(999)
    client = stack.app.test_client()
    response = upload(client, "POISON", images.png(1), poison, images.png(2), images.png(3))
    ids = [image["id"] for image in response.json["images"]]
    worker = stack.start_worker(
        "-I", "tests.utils.poison", env={"LOOKALIKE_TEST_POISON": hashlib.sha256(poison).hexdigest()}
    )
    wait_for(lambda: stack.count("pending") == 0, 120, "no photo left pending", 0.2)
    rows = {row.id: row for row in stack.rows()}
    bad = rows[ids[1]]
    assert bad.status == "failed" and bad.failure_kind == "permanent", stack.summary()
    assert "gave up after 2 attempts" in (bad.error or "") and bad.attempts == 2
    assert [rows[i].status for i in (ids[0], ids[2], ids[3])] == ["indexed"] * 3
    assert worker.text().count("exited with 'signal 9") == 2  # each attempt killed the pool process
    time.sleep(1)
    assert stack.count("failed") == 1  # no endless requeue
    stack.stop_workers()
    assert points(stack) == {ids[0], ids[2], ids[3]}


def test_same_task_delivered_twice_to_two_workers(stack: Stack) -> None:
    """Both deliveries run, at the same time or one after the other: one point per photo, one consistent status."""
    stack.start_worker(env={"EMBED_IMAGE_SIZE": "224"})
    stack.start_worker(env={"EMBED_IMAGE_SIZE": "224"})
    ids = upload_products_pending(stack, 8)
    for _ in range(2):
        embed_images.apply_async(args=[ids], task_id="the-same-task")
    stack.wait_all("indexed", 120)
    time.sleep(1)
    stack.stop_workers()
    results = [
        {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", line)}
        for w in stack.workers
        for line in w.text().splitlines()
        if "the-same-task] succeeded" in line
    ]
    assert len(results) == 2, [w.text()[-2000:] for w in stack.workers]
    assert sum(r["indexed"] for r in results) == len(ids)
    assert sum(r["busy"] + r["skipped"] for r in results) == len(ids)
    assert points(stack) == set(ids)
    assert all(row.status == "indexed" and row.attempts == 0 for row in stack.rows())


def upload_products_pending(stack: Stack, photos: int) -> list[int]:
    """Photos recorded as pending with no task sent: the test sends the task itself."""
    from unittest import mock

    with mock.patch("backend.services.catalog.enqueue_embedding"):
        client = stack.app.test_client()
        response = upload(client, "DUP", *(images.png(500 + k) for k in range(photos)))
    assert response.status_code == 201
    return [image["id"] for image in response.json["images"]]


def test_delete_during_an_in_flight_embed_leaves_no_point(stack: Stack) -> None:
    stack.start_worker(env={"EMBED_IMAGE_SIZE": "224", "EMBED_BATCH_SIZE": "16"})
    stack.app.config["SETTINGS"].embed_batch_size = 16  # one task for all 16 photos
    client = stack.app.test_client()
    keep = upload(client, "KEEP", images.png(7)).json
    stack.wait_all("indexed", 60)
    doomed = upload(client, "DOOMED", *(images.png(700 + k) for k in range(16))).json
    doomed_ids = {image["id"] for image in doomed["images"]}

    def claimed() -> bool:
        return any(row.claimed_by for row in stack.rows() if row.id in doomed_ids)

    wait_for(claimed, 30, "the worker to claim the photos", 0.01)
    assert stack.count("indexed") == 1  # the embed is in flight
    assert client.delete(f"/api/v1/products/{doomed['id']}", headers=AUTH).status_code == 204
    wait_for(lambda: "vanished': 16" in stack.workers[0].text(), 60, "the embed to notice the delete")
    stack.stop_workers()
    assert points(stack) == {keep["images"][0]["id"]}
    with stack.app.app_context():
        db.session.remove()


def test_a_batch_past_the_soft_time_limit_is_split_and_finishes(stack: Stack) -> None:
    """One task of 256 photos at 320 px takes longer than a 5 s soft limit on a CPU: it is split, not lost. (128
    at 224 px: a quiet 2-core machine finished them in time, and there was nothing to split.)"""
    from unittest import mock

    client = stack.app.test_client()
    ids: list[int] = []
    with mock.patch("backend.services.catalog.enqueue_embedding"):
        for n in range(16):
            response = upload(client, f"BIG{n}", *(images.png(2000 + n * 16 + k) for k in range(16)))
            ids.extend(image["id"] for image in response.json["images"])
    worker = stack.start_worker(env={"EMBED_IMAGE_SIZE": "320", "TASK_SOFT_TIME_LIMIT_S": "5"})
    # Celery sends the sender's time limits with each task: this one is sent as the worker would send it.
    embed_images.apply_async(args=[ids], soft_time_limit=5, time_limit=35)
    stack.wait_all("indexed", 240)
    assert "passed the soft time limit: splitting" in worker.text()
    assert "'split': 256" in worker.text()
    stack.stop_workers()
    assert points(stack) == set(ids)
    assert all(row.attempts == 0 for row in stack.rows())


def test_a_live_worker_sweeps_every_interval_without_beat(stack: Stack) -> None:
    """Photos whose claimant died elsewhere (its lease ran out) go back to the queue by a running worker's own
    periodic quick sweep: no beat, no command, PENDING_STALE_S at its production 600 s."""
    worker = stack.start_worker(env={"SWEEP_INTERVAL_S": "3", "PENDING_STALE_S": "600"})
    wait_for(lambda: "lookalike.sweep" in worker.text() and "succeeded" in worker.text(), 60, "the start-up sweep")
    ids = upload_products_pending(stack, 4)  # after the start-up sweep: only a later one can find them
    long_ago, just_now = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC)
    with stack.app.app_context():
        for image_id in ids:
            row = db.session.get(ProductImage, image_id)
            row.claimed_by, row.claimed_until, row.enqueued_at = "gone-host:1:1:task", long_ago, just_now
        db.session.commit()
    stack.wait_all("indexed", 60)
    assert "sweep repaired" in worker.text()
    stack.stop_workers()
    assert points(stack) == set(ids)


def test_a_workers_metrics_add_up_its_pool_processes(stack: Stack) -> None:
    """PROMETHEUS_MULTIPROC_DIR: the pool process embeds, the worker's main process shows its figures on
    WORKER_METRICS_PORT (before, each process kept its own, and nothing showed a worker's)."""
    import httpx

    from tests.utils.server import free_port

    ids = upload_products(stack, 3, 2)
    folder, port = stack.tmp / "metrics", free_port()
    (folder / "counter_1.db").parent.mkdir()
    (folder / "counter_1.db").write_bytes(b"left by an earlier run")
    stack.start_worker(
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder), "WORKER_METRICS_PORT": str(port), "EMBED_IMAGE_SIZE": "64"}
    )
    stack.wait_all("indexed", 120)
    assert not (folder / "counter_1.db").exists()  # the folder is emptied when the worker starts
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    embedded = re.search(r"^lookalike_embedded_photos_total (\S+)$", text, re.MULTILINE)
    assert embedded and float(embedded.group(1)) == len(ids), text[-2000:]
    stack.stop_workers()
