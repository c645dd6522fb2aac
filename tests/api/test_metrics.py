"""Observability: Prometheus metrics behind the admin token, and JSON logs on request."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.utils import images
from tests.utils.api import upload
from tests.utils.probes import run_python
from tests.utils.settings import AUTH


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, flags=re.M)
    assert match, f"{name}{labels} not in the metrics"
    return float(match.group(1))


def test_metrics_count_requests_photos_points_and_embedding(client: Any) -> None:
    # Figures are per process and the tests share one: compare before and after.
    route = '{method="GET",route="/api/v1/products/<int:product_id>/similar",status="200"}'
    requests = "lookalike_http_request_duration_seconds_count"
    before = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    already = sample(before, requests, route) if route in before else 0.0
    product = upload(client, "M1", images.png(1), images.png(2)).json
    for _ in range(3):
        assert client.get(f"/api/v1/products/{product['id']}/similar").status_code == 200
    assert client.get("/metrics").status_code == 401  # the admin token, as for every write
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert sample(text, requests, route) == already + 3
    assert sample(text, "lookalike_photos", '{status="indexed"}') == 2
    assert sample(text, "lookalike_photos", '{status="failed"}') == 0
    assert sample(text, "lookalike_index_points") == 2
    assert sample(text, "lookalike_embed_batch_seconds_count") >= 1
    assert sample(text, "lookalike_embedded_photos_total") >= 2
    assert sample(text, "lookalike_embed_photos_per_second") > 0
    assert "/api/v1/products/1/similar" not in text  # route templates, never raw paths


def test_made_up_methods_share_one_series(client: Any) -> None:
    for n in range(50):
        client.open("/api/v1/products", method=f"MADEUP{n}")
    text = client.get("/metrics", headers=AUTH).get_data(as_text=True)
    assert "MADEUP" not in text
    assert 'method="other"' in text


LOG_PROBE = """
import logging, sys
from pathlib import Path
from tests.utils.apps import migrated_app
from tests.utils.settings import make_settings

with migrated_app(make_settings(Path(sys.argv[1]), log_format="json")) as app:
    logging.getLogger("lookalike").warning("photo %s refused", 7)
    try:
        raise ValueError("broken")
    except ValueError:
        logging.getLogger("lookalike").exception("it failed")
"""


def test_json_logs_are_one_object_per_line(tmp_path: Path) -> None:
    result = run_python(LOG_PROBE, str(tmp_path / "var"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    ours = [r for r in records if r["logger"] == "lookalike"]
    assert ours[0]["message"] == "photo 7 refused" and ours[0]["level"] == "WARNING" and "time" in ours[0]
    assert ours[1]["message"] == "it failed" and "ValueError: broken" in ours[1]["exception"]
    assert all(line.startswith("{") for line in result.stderr.splitlines() if line.strip())
