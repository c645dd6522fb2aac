"""End to end: a real `lookalike serve` process on the embedded default, driven over HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils import images

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=["dev", "production"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    env.update(VAR_DIR=str(tmp_path / "var"), EMBED_IMAGE_SIZE="64", DEVICE="cpu", PYTHONUNBUFFERED="1")
    subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    port = free_port()
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(
        [LOOKALIKE, "serve", "--port", str(port), *(["--production"] if request.param == "production" else [])],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, Path(log.name).read_text()
            assert time.monotonic() < deadline, "server did not come up in 60 s"
            time.sleep(0.3)
        match = re.search(r"Development admin token: (\S+)", Path(log.name).read_text())
        assert match, "the development admin token is printed at start-up"
        yield base, match.group(1)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0, Path(log.name).read_text()[-2000:]  # a clean shutdown
        log.close()


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
