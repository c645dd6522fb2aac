"""The analytics page: events read back by model and arm, a server-rendered SVG chart, and an experiment's CTR
difference with its 95% interval in a sentence; the API answers the same numbers."""

from __future__ import annotations

import json
from typing import Any

from backend.services.events import compare_ctr
from tests.utils import images
from tests.utils.api import upload
from tests.utils.pages import log_in
from tests.utils.settings import AUTH


def rates(arm: str, impressions: int, clicks: int) -> Any:
    return {"model_version": "m", "arm": arm, "impressions": impressions, "clicks": clicks}


def test_the_two_proportion_comparison() -> None:
    won = compare_ctr(rates("A", 10_000, 500), rates("B", 10_000, 680))
    assert won is not None and won["difference_points"] == 1.8
    assert (won["ci_low"], won["ci_high"]) == (1.15, 2.45)  # 1.8 +- 1.96 * sqrt(.05*.95/1e4 + .068*.932/1e4)
    assert won["sentence"] == "B beats A by 1.8 points, 95% CI 1.1 to 2.5"
    close = compare_ctr(rates("A", 200, 10), rates("B", 200, 12))
    assert close is not None and close["sentence"].startswith("no clear difference yet: B minus A is 1.0 points")
    lost = compare_ctr(rates("A", 10_000, 680), rates("B", 10_000, 500))
    assert lost is not None and lost["sentence"].startswith("A beats B by 1.8 points")
    assert compare_ctr(rates("A", 0, 0), rates("B", 10, 1)) is None


def test_the_page_shows_the_arms_the_chart_and_the_verdict(client: Any) -> None:
    q, a, b = (upload(client, f"P-{n}", images.png(n)).json["id"] for n in range(1, 4))
    events = []
    for arm, clicks in (("A", 20), ("B", 45)):
        for n in range(200):
            common = {"query": q, "visitor": f"visitor-{arm}-{n:04d}", "model_version": f"model-{arm}", "arm": arm}
            events.append({**common, "type": "impression", "shown": [a, b]})
            if n < clicks:
                events.append({**common, "type": "click", "product": b, "position": 2})
    for start in range(0, len(events), 50):
        body = json.dumps({"events": events[start : start + 50]})
        assert client.post("/api/v1/events", data=body, content_type="text/plain").status_code == 202
    report = client.get("/api/v1/analytics", headers=AUTH).json
    (verdict,) = report["experiment"]
    assert verdict["sentence"].startswith("B beats A by 12.5 points, 95% CI")
    assert client.get("/admin/analytics").status_code == 302  # the admin's page
    log_in(client)
    page = client.get("/admin/analytics")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and verdict["sentence"] in html
    assert html.count("<polyline") == 2 and "<svg" in html and "model-A (A)" in html
    assert ">10.0%<" in html and ">22.5%<" in html  # CTR of A and B
    empty = client.get("/admin/analytics?from=2020-01-01&to=2020-01-31").get_data(as_text=True)
    assert 'id="no-events"' in empty
