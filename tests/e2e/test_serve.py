"""End to end: a real `lookalike serve` process on the embedded default, driven over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils import images
from tests.utils.server import running_server


@pytest.fixture(params=["dev", "production"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with running_server(tmp_path, production=request.param == "production") as started:
        yield started


def test_upload_over_http_and_near_copy_comes_first(server: tuple[str, str]) -> None:
    base, token = server
    auth = {"Authorization": f"Bearer {token}"}
    original = images.noise(21)
    photos = {
        "ORIGINAL": images.encode(original, "JPEG"),
        "DIFFERENT": images.encode(images.stripes(color=(30, 200, 90)), "JPEG"),
        "NEAR-COPY": images.encode(images.near_copy(original), "JPEG"),
    }
    ids = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for sku, photo in photos.items():
            response = http.post(
                "/api/v1/products",
                data={"sku": sku, "title": sku.title(), "category": "shirt", "price": "25"},
                files=[("images", (f"{sku}.jpg", photo, "image/jpeg"))],
                headers=auth,
            )
            assert response.status_code == 201, response.text
            assert response.json()["images"][0]["status"] == "indexed"
            ids[sku] = response.json()["id"]
        assert (
            http.post("/api/v1/products", data={"sku": "X"}, headers={"Authorization": "Bearer no"}).status_code == 401
        )
        body = http.get(f"/api/v1/products/{ids['ORIGINAL']}/similar", params={"limit": 10}).json()
        assert [item["product"]["sku"] for item in body["items"]] == ["NEAR-COPY", "DIFFERENT"]
        assert body["items"][0]["distance"] < body["items"][1]["distance"]
        photo_url = body["items"][0]["product"]["images"][0]["url"]
        assert http.get(photo_url).content == photos["NEAR-COPY"]
        stats = http.get("/api/v1/stats").json()
        assert stats["images"]["indexed"] == 3 and stats["index"]["points"] == 3
        assert stats["model"]["trained"] is False
        assert http.get("/openapi.json").json()["openapi"].startswith("3.")
