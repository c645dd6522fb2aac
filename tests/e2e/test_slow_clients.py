"""`serve --production` against slow clients: stalled connections hold sockets, never the threads that answer."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.utils.server import LOOKALIKE, free_port, running_server

STALLED = 50


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def stall(port: int, n: int) -> list[socket.socket]:
    """n connections that stop half-way: half in their headers, half in a public POST /search body."""
    held = []
    for i in range(n):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        else:
            sock.sendall(
                b"POST /api/v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
            )
        held.append(sock)
    return held


def test_fifty_stalled_connections_leave_health_and_queries_answering(tmp_path: Path) -> None:
    with running_server(tmp_path, production=True) as (base, _token):
        port = int(base.rsplit(":", 1)[1])
        with httpx.Client(base_url=base, timeout=5) as client:
            assert client.get("/api/v1/health").status_code == 200  # warm: the first request builds caches
            held = stall(port, STALLED)
            try:
                time.sleep(0.5)
                answers = []
                for _ in range(20):
                    started = time.perf_counter()
                    response = client.get("/api/v1/health")
                    answers.append((response.status_code, (time.perf_counter() - started) * 1000))
                assert all(status == 200 for status, _ in answers)
                # gunicorn's gthread workers (8 threads) answered none of these within the 5 s timeout.
                assert statistics.median(ms for _, ms in answers) < 100, answers
                assert client.get("/api/v1/stats").status_code == 200
            finally:
                for sock in held:
                    sock.close()
    assert "backend.access" in (tmp_path / "serve.log").read_text()  # one access line per request


def test_several_processes_share_the_socket_and_one_that_dies_is_started_again(tmp_path: Path) -> None:
    """With a Qdrant server (here an address nobody answers on: /health says degraded), `--workers 2` forks two
    serving processes; killing one brings a new one; SIGTERM stops them all cleanly."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"), QDRANT_URL=f"http://127.0.0.1:{free_port()}", DEFAULT_MODEL="untrained",
        EMBED_IMAGE_SIZE="64", DEVICE="cpu", PYTHONUNBUFFERED="1",
    )  # fmt: skip
    subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp_path, check=True, capture_output=True, timeout=120)
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [LOOKALIKE, "serve", "--production", "--workers", "2", "--threads", "2", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"

            def answering() -> bool:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"{base}/api/v1/health", timeout=5).status_code in (200, 503):
                            return True
                    except httpx.TransportError:
                        pass
                    assert server.poll() is None, log_path.read_text()
                    time.sleep(0.3)
                return False

            assert answering()
            children = sorted(children_of(server.pid))
            assert len(children) == 2
            os.kill(children[0], signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                now = children_of(server.pid)
                if len(now) == 2 and children[0] not in now:
                    break
                time.sleep(0.3)
            else:
                pytest.fail(f"no new serving process: {log_path.read_text()[-2000:]}")
            assert answering()
        finally:
            server.terminate()
            code = server.wait(timeout=30)
    assert code == 0, log_path.read_text()[-2000:]
    assert "starting it again" in log_path.read_text()
