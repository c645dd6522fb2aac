"""The sweep repairs every kind of drift, on Qdrant Edge and on the server code path; the pipeline's commands."""

from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backend.core.extensions import db
from backend.db.models import IndexCollection, ProductImage
from backend.index import IndexPoint, store_for
from backend.indexing.sweep import run_sweep
from backend.worker.tasks import enqueue_embedding
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index, migrated_app
from tests.utils.settings import make_settings


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
        "orphan_media": 0,
        "dead_imports": [],
        "dead_builds": [],
        "events_pruned": 0,
        "arm_missing": 0,
        "arm_orphans": 0,
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


def test_full_sweep_removes_media_no_row_owns_after_the_grace(any_app: Any) -> None:
    product = upload(any_app.test_client(), "KEEP", images.png(1)).json
    root = any_app.config["SETTINGS"].media_root
    kept = root / product["images"][0]["url"].removeprefix("/media/")
    old = time.time() - 3600
    os.utime(kept, (old, old))  # old, but a row owns it
    orphan = root / "ab" / ("ab" + "0" * 30 + ".jpg")  # a request that wrote its file and died before its commit
    unfinished = root / "cd" / ("cd" + "1" * 30 + ".png.part")  # a write cut short
    in_flight = root / "ef" / ("ef" + "2" * 30 + ".png")  # written a moment ago, its commit still to come
    for path in (orphan, unfinished, in_flight):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(images.png(2))
    for path in (orphan, unfinished):
        os.utime(path, (old, old))
    assert sweep(any_app, full=False)["orphan_media"] == 0 and orphan.exists()  # the quick sweep leaves files
    assert sweep(any_app, full=True)["orphan_media"] == 2
    assert kept.exists() and in_flight.exists() and not orphan.exists() and not unfinished.exists()


def test_photos_of_a_dead_claimant_go_back_at_once_whatever_pending_stale_says(any_app: Any) -> None:
    """PENDING_STALE_S (60 s here) is for tasks lost in a queue; a claim proves the photo was being
    embedded, so a claimant that died frees it at the next sweep: its process is gone, or its lease ran out."""
    client = any_app.test_client()
    ids = [upload(client, f"D{n}", images.png(n)).json["images"][0]["id"] for n in range(3)]
    just_now, later = datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=5)
    dead_here = f"{socket.gethostname()[:60]}:999999:1:task"  # this host, a pid that does not run
    set_row(any_app, ids[0], status="pending", enqueued_at=just_now, claimed_by=dead_here, claimed_until=later)
    set_row(any_app, ids[1], status="pending", enqueued_at=just_now, claimed_by="other:1:1:t", claimed_until=just_now)
    set_row(any_app, ids[2], status="pending", enqueued_at=just_now)  # queued a moment ago: its task is on its way
    with any_app.app_context():
        settings = any_app.config["SETTINGS"]
        assert settings.pending_stale_s == 60 and settings.claim_lease_s == 60
        report = run_sweep(session=db.session, settings=settings, enqueue=lambda todo: None)
        assert report.requeued_pending == 2
        # In-process tasks die with their process: what was enqueued before this process started is lost.
        report = run_sweep(
            session=db.session, settings=settings, enqueue=lambda todo: None, lost_before=datetime.now(UTC)
        )
        assert report.requeued_pending == 3
