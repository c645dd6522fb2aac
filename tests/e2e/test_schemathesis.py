"""schemathesis against the live server's own OpenAPI document: no 5xx, responses match their schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.utils import images
from tests.utils.server import running_server

SCHEMATHESIS = str(Path(sys.executable).with_name("st"))


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(tmp_path: Path) -> None:
    with running_server(tmp_path) as (base, token):
        auth = {"Authorization": f"Bearer {token}"}
        for i in range(3):  # real ids for generated requests to find
            response = httpx.post(
                f"{base}/api/v1/products",
                data={"sku": f"SEED-{i}", "title": f"Seed {i}", "category": "dress", "price": "10"},
                files=[("images", (f"{i}.png", images.png(i), "image/png"))],
                headers=auth,
                timeout=60,
            )
            assert response.status_code == 201
        result = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{base}/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "20",
                "--seed",
                "1",
                "--request-timeout",
                "60",
                "--header",
                f"Authorization: Bearer {token}",
            ],
            capture_output=True,
            text=True,
            timeout=500,
        )
        assert result.returncode == 0, result.stdout[:8000] + result.stderr[-2000:]
