"""Start a real `lookalike serve` process for end-to-end tests (the scripts' harness, with the tests' settings)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from scripts.harness import LOOKALIKE, clean_env, free_port, serving
from tests.utils.datasets import photos_of

__all__ = ["LOOKALIKE", "free_port", "running_server"]


@contextmanager
def running_server(
    tmp_path: Path, *, production: bool = False, migrate: bool = True, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """(base URL, development admin token) of a server on the embedded default, stopped at the end.

    `migrate=False` leaves the schema to `serve` itself (it migrates the embedded default); `env` adds settings."""
    settings = {"VAR_DIR": str(tmp_path / "var"), "EMBED_IMAGE_SIZE": "64", "DEFAULT_MODEL": "untrained"}
    full = clean_env(**settings, DEVICE="cpu", **(env or {}))
    if migrate:
        subprocess.run(
            [LOOKALIKE, "db", "upgrade"], env=full, cwd=tmp_path, check=True, capture_output=True, timeout=120
        )
    args = ["--production"] if production else []
    with serving(full, cwd=tmp_path, log_path=tmp_path / "serve.log", args=args, timeout_s=60) as server:
        yield server.base, server.admin_token()
    assert server.process.returncode == 0, server.log_tail()  # a clean shutdown


def dresses_on(base: str, token: str, n: int) -> list[int]:
    """`n` products of one real dress photo each, created over the API of a running server: their ids."""
    ids = []
    for k, path in enumerate(photos_of("dress", n)):
        files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
        data = {"sku": f"D{k}", "title": f"Dress {k}", "category": "dress"}
        response = httpx.post(
            f"{base}/api/v1/products", data=data, files=files, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids
