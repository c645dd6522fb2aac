"""Shopper events: POST /api/v1/events takes good ones (any content type, for sendBeacon), refuses bad ones with
the field named and keeps nothing of that body, counts refusals in /metrics, limits floods (429) and large
bodies (413); GET /api/v1/analytics reads them back by model, arm and day; the sweep prunes old ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend.core.extensions import db
from backend.db.models import ShopperEvent
from backend.indexing.sweep import run_sweep
from backend.worker.enqueue import enqueue_embedding
from tests.utils import images
from tests.utils.api import upload
from tests.utils.settings import AUTH

VISITOR = "visitor-0123456789"


def impression(query: int, shown: list[int], **more: Any) -> dict[str, Any]:
    return {"type": "impression", "query": query, "shown": shown, "visitor": VISITOR, "model_version": "m1", **more}


def click(query: int, product: int, position: int, **more: Any) -> dict[str, Any]:
    return {
        "type": "click", "query": query, "product": product, "position": position, "visitor": VISITOR,
        "model_version": "m1", **more,
    }  # fmt: skip


def post(client: Any, body: Any, content_type: str = "text/plain;charset=UTF-8") -> Any:
    return client.post("/api/v1/events", data=json.dumps(body), content_type=content_type)


@pytest.fixture
def ids(client: Any) -> list[int]:
    return [upload(client, f"E-{n}", images.png(n)).json["id"] for n in range(1, 5)]


def stored(app: Any) -> int:
    with app.app_context():
        from backend.services.events import writer_for

        writer_for(db.engine).flush()
        return db.session.query(ShopperEvent).count()


def test_events_are_kept_and_read_back_by_model_arm_and_position(client: Any, app: Any, ids: list[int]) -> None:
    q, a, b, c = ids
    body = {
        "events": [
            impression(q, [a, b, c]),
            impression(q, [a, b]),
            click(q, b, 2),
            {**click(q, b, 2), "type": "add_to_cart"},
            impression(q, [c], model_version="m2", arm="B"),
        ]
    }
    answer = post(client, body)  # as sendBeacon sends it: text/plain
    assert answer.status_code == 202 and answer.json == {"accepted": 5}
    assert post(client, {**click(q, a, 1)}, content_type="application/json").status_code == 202  # one event alone
    assert stored(app) == 6
    report = client.get("/api/v1/analytics", headers=AUTH)
    assert report.status_code == 200
    m1, m2 = report.json["by_model"]
    assert (m1["model_version"], m1["arm"], m1["impressions"], m1["clicks"], m1["add_to_cart"]) == ("m1", None, 2, 2, 1)
    assert m1["ctr"] == 1.0 and m1["add_to_cart_rate"] == 0.5 and m1["purchase_rate"] == 0
    assert m1["ctr_by_position"] == {"1": 0.5, "2": 0.5}  # one click at 1 of 2 rows, one at 2 of 2 rows
    assert (m2["model_version"], m2["arm"], m2["impressions"], m2["clicks"], m2["ctr"]) == ("m2", "B", 1, 0, 0.0)
    today = datetime.now(UTC).date().isoformat()
    assert [(d["day"], d["model_version"]) for d in report.json["by_day"]] == [(today, "m1"), (today, "m2")]
    assert client.get("/api/v1/analytics").status_code == 401
    bad = client.get("/api/v1/analytics?from=2026-12-02&to=2026-12-01", headers=AUTH)
    assert bad.status_code == 400 and bad.json["field"] == "to"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "hover"}, "events[1].type"),
        ({"product": 99999}, "events[1].product"),
        ({"query": 99999}, "events[1].query"),
        ({"product": None}, "events[1].product"),
        ({"visitor": "me"}, "events[1].visitor"),
        ({"visitor": "ann@example.com"}, "events[1].visitor"),
        ({"position": 0}, "events[1].position"),
        ({"at": "2999-01-01T00:00:00Z"}, "events[1].at"),
        ({"model_version": ""}, "events[1].model_version"),
    ],
)
def test_a_bad_event_is_400_naming_its_field_and_nothing_of_the_body_is_kept(
    client: Any, app: Any, ids: list[int], change: dict[str, Any], field: str
) -> None:
    q, a, _, _ = ids
    refused = post(client, {"events": [impression(q, [a]), {**click(q, a, 1), **change}]})
    assert refused.status_code == 400 and refused.json["field"] == field, refused.json
    assert stored(app) == 0
    metrics = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    label = field.split("]", 1)[1] if "]" in field else field
    assert f'lookalike_events_refused_total{{field="events{label}"}}' in metrics


def test_bodies_that_are_not_events(client: Any, app: Any, ids: list[int]) -> None:
    q, a, _, _ = ids
    for body, field in ((["x"], "body"), ({"events": []}, "events"), ({"events": [impression(q, [a])] * 51}, "events")):
        answer = post(client, body)
        assert answer.status_code == 400 and answer.json["field"] == field, (body, answer.json)
    assert client.post("/api/v1/events", data="{not json", content_type="text/plain").json["field"] == "body"
    deep = client.post("/api/v1/events", data="[" * 5000 + "]" * 5000, content_type="text/plain")
    assert deep.status_code == 400
    big = client.post("/api/v1/events", data="x" * (17 * 1024), content_type="text/plain")
    assert big.status_code == 413
    assert stored(app) == 0


def test_a_flood_past_the_rate_limit_is_429_and_not_kept(make_app: Any) -> None:
    app = make_app("flood", rate_limit_events="5/minute")
    client = app.test_client()
    q = upload(client, "F-1", images.png(1)).json["id"]
    a = upload(client, "F-2", images.png(2)).json["id"]
    answers = [post(client, impression(q, [a])).status_code for _ in range(8)]
    assert answers == [202] * 5 + [429] * 3
    assert stored(app) == 5


def test_the_full_sweep_prunes_events_past_the_retention(make_app: Any) -> None:
    app = make_app("retention", events_retention_days=30)
    client = app.test_client()
    q = upload(client, "R-1", images.png(1)).json["id"]
    a = upload(client, "R-2", images.png(2)).json["id"]
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat()
    assert post(client, {"events": [impression(q, [a], at=old), impression(q, [a])]}).status_code == 202
    assert stored(app) == 2
    with app.app_context():
        report = run_sweep(session=db.session, settings=app.config["SETTINGS"], enqueue=enqueue_embedding, full=True)
    assert report.events_pruned == 1 and stored(app) == 1


def test_the_events_export_as_json_lines_replays_into_the_api(client: Any, app: Any, ids: list[int]) -> None:
    from tests.utils.cli import cli_runner

    q, a, b, _ = ids
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert post(client, {"events": [impression(q, [a, b], at=yesterday), click(q, b, 2, arm="B")]}).status_code == 202
    runner = cli_runner(app)
    everything = runner.invoke(args=["analytics", "export"])
    assert everything.exit_code == 0, everything.output
    lines = [json.loads(line) for line in everything.stdout.splitlines() if line.startswith("{")]
    assert [(e["type"], e["shown"], e["product"], e["arm"]) for e in lines] == [
        ("impression", [a, b], None, None),
        ("click", [], b, "B"),
    ]
    today = datetime.now(UTC).date().isoformat()
    only_today = runner.invoke(args=["analytics", "export", "--from", today])
    assert [json.loads(line)["type"] for line in only_today.stdout.splitlines() if line.startswith("{")] == ["click"]
    bad = runner.invoke(args=["analytics", "export", "--from", "yesterday"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    replay = {"events": [{k: v for k, v in e.items() if v is not None and v != []} for e in lines]}
    assert post(client, replay).status_code == 202  # what is exported is what the API takes
    assert stored(app) == 4
