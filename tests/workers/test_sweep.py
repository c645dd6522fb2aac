"""The sweep repairs every kind of drift, on Qdrant Edge and on the server code path; the pipeline's commands."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from flask_migrate import upgrade

from backend.app import create_app
from backend.db.models import IndexCollection, ProductImage
from backend.extensions import db
from backend.index import IndexPoint, close_all, store_for
from backend.pipeline.sweep import run_sweep
from backend.pipeline.tasks import enqueue_embedding
from tests.conftest import REDIS_URL, make_settings
from tests.utils import images, live_index, migrated_app
from tests.utils.api import upload
from tests.utils.server import LOOKALIKE, free_port
from tests.utils.stack import wait_for


@pytest.fixture(params=["edge", "server"])
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    extra = {"qdrant_url": ":memory:"} if request.param == "server" else {}
    with migrated_app(make_settings(tmp_path / "var", pending_stale_s=60, **extra)) as app:
        yield app


def set_row(app: Any, image_id: int, **values: Any) -> None:
    with app.app_context():
        row = db.session.get(ProductImage, image_id)
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()


def sweep(app: Any, full: bool = True) -> dict[str, Any]:
    with app.app_context():
        report = run_sweep(session=db.session, settings=app.config["SETTINGS"], enqueue=enqueue_embedding, full=full)
        return report.as_dict()


def test_sweep_repairs_drift(any_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("backend.index.base.RELEASE_GRACE_S", 0.1)
    client = any_app.test_client()
    a = upload(client, "A", images.png(1), images.png(2), category="dress", price="10").json
    b = upload(client, "B", images.png(3)).json
    c = upload(client, "C", images.png(4)).json
    ids = [i["id"] for i in a["images"]] + [b["images"][0]["id"], c["images"][0]["id"]]
    index = live_index(any_app)
    clean = sweep(any_app)
    assert {k: v for k, v in clean.items() if k not in {"optimized", "dropped_collections"}} == {
        "requeued_pending": 0,
        "retried_failed": 0,
        "missing_points": 0,
        "other_model": 0,
        "orphan_points": 0,
        "payloads_fixed": 0,
        "index_error": None,
    }

    index.upsert([IndexPoint(999, np.zeros(1000, dtype=np.float32), {"product_id": 999})])  # an orphan
    index.delete([ids[0]])  # a point lost by the store
    set_row(any_app, ids[1], status="failed", failure_kind="transient", error="vector index unavailable: x")
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    set_row(any_app, ids[2], status="pending", enqueued_at=long_ago)  # its task was lost
    index.set_product_payload(c["id"], {"category": "stale"})  # a payload update that never arrived
    settings = any_app.config["SETTINGS"]
    store_for(settings).open("products-stray").upsert(
        [IndexPoint(1, np.ones(1000, dtype=np.float32), {"product_id": 1})]
    )
    assert "products-stray" in store_for(settings).list()

    quick = sweep(any_app, full=False)  # the minutely sweep: lost and failed photos only
    assert quick["retried_failed"] == 1 and quick["requeued_pending"] == 1 and quick["missing_points"] == 0
    report = sweep(any_app)
    assert report["orphan_points"] == 1 and report["missing_points"] == 1
    assert report["retried_failed"] == 0 and report["requeued_pending"] == 0  # done by the quick one
    assert report["payloads_fixed"] == 1
    # On Edge this process still holds the stray shard for a moment (queries in flight finish): a later sweep drops it.
    time.sleep(0.3)
    dropped = quick["dropped_collections"] + report["dropped_collections"] + sweep(any_app)["dropped_collections"]
    assert dropped == ["products-stray"] and "products-stray" not in store_for(settings).list()
    assert index.ids() == set(ids)
    assert {p["category"] for p in index.payloads().values()} == {"dress"}
    assert [i["status"] for i in client.get(f"/api/v1/products/{a['id']}").json["images"]] == ["indexed"] * 2
    assert sweep(any_app)["missing_points"] == 0


def test_sweep_leaves_alone_what_a_live_worker_holds(any_app: Any) -> None:
    client = any_app.test_client()
    image_id = upload(client, "A", images.png(1)).json["images"][0]["id"]
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    later = datetime.now(UTC) + timedelta(minutes=5)
    # Claimed by a process on another host whose lease still runs: not lost, only slow.
    set_row(
        any_app, image_id, status="pending", enqueued_at=long_ago, claimed_by="elsewhere:1:1:t", claimed_until=later
    )
    assert sweep(any_app)["requeued_pending"] == 0
    set_row(any_app, image_id, claimed_until=long_ago)  # the lease ran out
    assert sweep(any_app)["requeued_pending"] == 1
    assert client.get(f"/api/v1/images/{image_id}/similar").status_code == 200


def test_sweep_keeps_a_just_retired_collection_for_the_grace(any_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries that read the old name just before a switch may still be on it: it is dropped only later."""
    monkeypatch.setattr("backend.index.base.RELEASE_GRACE_S", 0.1)  # this process lets go of the Edge shard sooner
    settings = any_app.config["SETTINGS"]
    name = "products-old-20260101000000"
    store_for(settings).open(name).upsert([IndexPoint(1, np.ones(1000, dtype=np.float32), {"product_id": 1})])
    with any_app.app_context():
        db.session.add(IndexCollection(name=name, model_version="old", state="retired", switched_at=datetime.now(UTC)))
        db.session.commit()
    assert sweep(any_app, full=False)["dropped_collections"] == []
    assert name in store_for(settings).list()
    with any_app.app_context():
        row = db.session.get(IndexCollection, name)
        row.switched_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    time.sleep(0.3)
    assert sweep(any_app, full=False)["dropped_collections"] == [name]
    assert name not in store_for(settings).list()
    with any_app.app_context():
        assert db.session.get(IndexCollection, name) is None


def test_settings_keep_time_limits_and_retries_below_the_visibility_timeout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must exceed the task time limit"):
        make_settings(tmp_path, task_soft_time_limit_s=100, broker_visibility_timeout_s=120)
    with pytest.raises(ValueError, match="must stay below BROKER_VISIBILITY_TIMEOUT_S"):
        make_settings(tmp_path, retry_backoff_max_s=600, broker_visibility_timeout_s=600)
    with pytest.raises(ValueError, match="user:password"):
        make_settings(tmp_path, flower_basic_auth="nopassword")
    settings = make_settings(tmp_path)
    app = create_app(settings)
    conf = app.extensions["celery"].conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert settings.retry_backoff_max_s < conf.broker_transport_options["visibility_timeout"]
    assert conf.task_routes["lookalike.embed_images"] == {"queue": "embed"}
    assert conf.beat_schedule["sweep"]["schedule"] == 60.0
    assert conf.beat_schedule["sweep-full"] == {
        **conf.beat_schedule["sweep-full"],
        "schedule": 3600.0,
        "kwargs": {"full": True},
    }


def test_stats_and_worker_commands(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path / "var"))
    with app.app_context():
        upgrade()
    upload(app.test_client(), "A", images.png(1), images.png(2))
    runner = app.test_cli_runner()
    stats = json.loads(runner.invoke(args=["stats"]).output)
    assert stats["photos"] == {"pending": 0, "indexed": 2, "failed": 0}
    assert stats["index"]["points"] == 2 and stats["model_version"].startswith("untrained-")
    swept = runner.invoke(args=["sweep"])
    assert swept.exit_code == 0 and json.loads(swept.output)["missing_points"] == 0
    refused = runner.invoke(args=["worker"])
    assert refused.exit_code == 2 and "REDIS_URL is not set" in refused.output
    close_all()
    edge = create_app(make_settings(tmp_path / "var2", redis_url=REDIS_URL)).test_cli_runner()
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


def test_bulk_import_into_the_full_stack_enqueues_chunks_and_returns(tmp_path: Path) -> None:
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    tree = tmp_path / "photos"
    for n in range(7):
        (tree / ("hat" if n % 2 else "shoe")).mkdir(parents=True, exist_ok=True)
        (tree / ("hat" if n % 2 else "shoe") / f"{n}.png").write_bytes(images.png(n))
    app = create_app(make_settings(tmp_path / "var", redis_url=REDIS_URL, embed_batch_size=3))
    with app.app_context():
        upgrade()
    try:
        result = app.test_cli_runner().invoke(args=["import", str(tree)])
        assert result.exit_code == 0, result.output
        assert "imported 7 products" in result.output and "enqueued 7 photos" in result.output
        assert connection.llen("embed") == 3  # tasks of 3, 3 and 1 photos, nothing embedded yet
        with app.app_context():
            rows = db.session.query(ProductImage).all()
            assert {r.status for r in rows} == {"pending"} and all(r.enqueued_at for r in rows)
    finally:
        connection.flushdb()


def test_the_embedded_default_sweeps_inside_the_serving_process(tmp_path: Path) -> None:
    from backend.pipeline.maintenance import start_in_process_sweep

    app = create_app(make_settings(tmp_path / "var", sweep_interval_s=0.2, sweep_full_interval_s=0.5))
    with app.app_context():
        upgrade()
    image_id = upload(app.test_client(), "A", images.png(1)).json["images"][0]["id"]
    index = live_index(app)
    index.delete([image_id])  # a point lost behind the database's back
    stop = start_in_process_sweep(app)
    assert stop is not None
    try:
        wait_for(lambda: index.ids() == {image_id}, 30, "the sweep to put the point back")
    finally:
        stop.set()
    close_all()
    assert start_in_process_sweep(create_app(make_settings(tmp_path / "v2", redis_url=REDIS_URL))) is None
