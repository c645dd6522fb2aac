"""The embed task: called directly, against an unreachable index, and delivered through real Redis."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from backend.core.extensions import db
from backend.db.models import ProductImage
from backend.worker.tasks import embed_images
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index
from tests.utils.settings import REDIS_URL


def statuses(app: Any) -> list[tuple[str, str | None, int]]:
    with app.app_context():
        db.session.expire_all()
        rows = db.session.query(ProductImage).order_by(ProductImage.id).all()
        return [(r.status, r.error, r.attempts) for r in rows]


def test_task_is_idempotent(client: Any, app: Any, settings: Any) -> None:
    product = upload(client, "I1", images.png(1), images.png(2)).json
    ids = [i["id"] for i in product["images"]]
    with app.app_context():
        assert embed_images(ids) == {
            "indexed": 0,
            "skipped": 2,
            "busy": 0,
            "failed": 0,
            "vanished": 0,
            "requeued": 0,
        }
        assert live_index(app).count() == 2
    assert [s[2] for s in statuses(app)] == [0, 0]  # indexed photos carry no unfinished attempt; the skip added none


def test_missing_file_fails_with_reason_and_unknown_ids_vanish(client: Any, app: Any, settings: Any) -> None:
    product = upload(client, "M1", images.png(1)).json
    image_id = product["images"][0]["id"]
    with app.app_context():
        row = db.session.get(ProductImage, image_id)
        row.status, row.model_version = "pending", None
        db.session.commit()
        (Path(settings.media_root) / row.stored_name).unlink()
        result = embed_images([image_id, 12345])
    assert result["failed"] == 1 and result["vanished"] == 1
    status, error, attempts = statuses(app)[0]
    assert status == "failed" and "cannot read photo" in error and attempts == 1


def test_unreachable_index_fails_photos_with_reason(make_app: Any) -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    app = make_app(qdrant_url="http://127.0.0.1:9")
    client = app.test_client()
    response = upload(client, "DOWN", images.png(1))
    assert response.status_code == 201
    image = response.json["images"][0]
    assert image["status"] == "failed" and image["error"].startswith("vector index unavailable")
    similar = client.get(f"/api/v1/products/{response.json['id']}/similar")
    assert similar.status_code == 409 and similar.json["status"] == {"pending": 0, "indexed": 0, "failed": 1}
    assert client.get("/api/v1/health").status_code == 503
    stats = client.get("/api/v1/stats")
    assert stats.status_code == 503 and stats.json["error"] == "index_unavailable"


@pytest.fixture
def redis_app(make_app: Any) -> Any:
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        connection.ping()
    except redis.ConnectionError as exc:
        pytest.fail(f"Redis is required for these tests and is not reachable at {REDIS_URL}: {exc}")
    connection.flushdb()
    app = make_app(redis_url=REDIS_URL)
    yield app, connection
    connection.flushdb()


def test_upload_enqueues_on_redis_and_a_worker_indexes(redis_app: Any) -> None:
    app, connection = redis_app
    client = app.test_client()
    response = upload(client, "R1", images.png(1), images.png(2))
    assert response.status_code == 201
    assert [i["status"] for i in response.json["images"]] == ["pending", "pending"]
    assert connection.llen("embed") == 1  # one task for all the upload's photos, on the embed queue
    pending = client.get(f"/api/v1/products/{response.json['id']}/similar")
    assert pending.status_code == 409 and pending.json["status"]["pending"] == 2

    celery_app = app.extensions["celery"]
    with start_worker(celery_app, queues=["embed"], pool="solo", perform_ping_check=False, shutdown_timeout=30):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(s[0] == "pending" for s in statuses(app)):
            time.sleep(0.2)
    assert [s[0] for s in statuses(app)] == ["indexed", "indexed"]
    assert connection.llen("embed") == 0
    assert client.get("/api/v1/stats").json["index"]["points"] == 2
