"""The one harness of the benchmarks, the docs' scripts and the end-to-end tests: a free port, an environment
that holds our own settings only, and `lookalike serve` started, waited for and stopped.

A script under bench/ or docs/ puts the repository on `sys.path` and imports it:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from scripts.harness import clean_env, serving
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))
# What a developer's shell may point at their own install: a harness never inherits them.
SERVICE_VARIABLES = ("ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL", "VAR_DIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(keep: Sequence[str] = (), **settings: str) -> dict[str, str]:
    """This process's environment less SERVICE_VARIABLES (but those in `keep`), with PYTHONUNBUFFERED=1 and
    `settings` (VAR_DIR=..., DEFAULT_MODEL=...)."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES or k in keep}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


class ServerDown(RuntimeError):
    """`lookalike serve` exited, or did not answer /api/v1/health in time; the message ends with its log."""


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def admin_token(self) -> str:
        """The development admin token `serve` printed (ADMIN_TOKEN unset)."""
        match = re.search(r"Development admin token: (\S+)", self.log_path.read_text())
        if match is None:
            raise ServerDown(f"no development admin token in the log:\n{self.log_tail()}")
        return match.group(1)

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_path.read_text()[-chars:]


def wait_healthy(server: Server, timeout_s: float = 120) -> None:
    """Until /api/v1/health answers 200; ServerDown when the process exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{server.base}/api/v1/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.process.poll() is not None:
            raise ServerDown(f"lookalike serve exited with {server.process.returncode}:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            raise ServerDown(
                f"lookalike serve did not answer /api/v1/health in {timeout_s:.0f} s:\n{server.log_tail()}"
            )
        time.sleep(0.3)


def start(
    env: dict[str, str],
    *,
    cwd: Path,
    log_path: Path,
    args: Sequence[str] = (),
    port: int | None = None,
    lookalike: str = LOOKALIKE,
) -> Server:
    """`lookalike serve --port PORT ARGS` in the background, its output in `log_path` (appended); `lookalike`
    may be another checkout's command (a benchmark against a baseline)."""
    port = port or free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [lookalike, "serve", "--port", str(port), *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )
    return Server(f"http://127.0.0.1:{port}", port, process, log_path)


def stop(server: Server, timeout_s: float = 30) -> int:
    """SIGTERM, then SIGKILL after `timeout_s`; the exit status."""
    server.process.terminate()
    try:
        return server.process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        raise


@contextmanager
def serving(
    env: dict[str, str],
    *,
    cwd: Path,
    log_path: Path,
    args: Sequence[str] = (),
    port: int | None = None,
    timeout_s: float = 120,
    lookalike: str = LOOKALIKE,
) -> Iterator[Server]:
    """A `lookalike serve` that answers /api/v1/health, stopped at the end (its exit status then in
    `server.process.returncode`)."""
    server = start(env, cwd=cwd, log_path=log_path, args=args, port=port, lookalike=lookalike)
    try:
        wait_healthy(server, timeout_s)
        yield server
    finally:
        if server.process.poll() is None:
            stop(server)
