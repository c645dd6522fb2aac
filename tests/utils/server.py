"""Start a real `lookalike serve` process for end-to-end tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    tmp_path: Path, *, production: bool = False, migrate: bool = True, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """(base URL, development admin token) of a server on the embedded default, stopped at the end.

    `migrate=False` leaves the schema to `serve` itself (it migrates the embedded default); `env` adds settings."""
    extra = env
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        EMBED_IMAGE_SIZE="64",
        DEFAULT_MODEL="untrained",
        DEVICE="cpu",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    if migrate:
        subprocess.run(
            [LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120
        )
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        command = [LOOKALIKE, "serve", "--port", str(port), *(["--production"] if production else [])]
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "server did not come up in 60 s"
                time.sleep(0.3)
            match = re.search(r"Development admin token: (\S+)", log_path.read_text())
            assert match, "the development admin token is printed at start-up"
            yield base, match.group(1)
        finally:
            process.terminate()
            code = process.wait(timeout=30)
        assert code == 0, log_path.read_text()[-2000:]  # a clean shutdown
