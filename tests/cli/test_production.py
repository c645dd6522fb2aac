"""Production serving layout: one process on the embedded store, several on the Qdrant server."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from backend.cli.production import worker_layout
from tests.utils.settings import make_settings


def test_embedded_store_serves_from_one_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert worker_layout(settings, None, None) == (1, 8)
    assert worker_layout(settings, 1, 3) == (1, 3)
    with pytest.raises(ValueError, match="locked to one process"):
        worker_layout(settings, 4, None)


def test_qdrant_server_allows_several_processes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, qdrant_url="http://127.0.0.1:6333")
    assert worker_layout(settings, None, None) == (4, 4)
    assert worker_layout(settings, 2, 8) == (2, 8)


def test_the_access_log_has_one_line_per_request_and_is_json_under_log_format_json(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import json
    import logging

    from werkzeug.test import Client

    from backend.cli.production import AccessLog
    from backend.core.logs import JsonFormatter
    from tests.utils.apps import migrated_app

    with migrated_app(make_settings(tmp_path)) as app:
        client = Client(AccessLog(app.wsgi_app))
        with caplog.at_level(logging.INFO, logger="backend.access"):
            assert client.get("/api/v1/products?per_page=5").status_code == 200
            assert client.get("/api/v1/products/999999").status_code == 404
    lines = [r for r in caplog.records if r.name == "backend.access"]
    assert len(lines) == 2
    assert '"GET /api/v1/products?per_page=5" 200' in lines[0].getMessage()
    assert '"GET /api/v1/products/999999" 404' in lines[1].getMessage()
    body = json.loads(JsonFormatter().format(lines[1]))
    assert body["logger"] == "backend.access" and "/api/v1/products/999999" in body["message"]


SLOW_START = """
import os, socket, sys, time
from backend.cli import production

def still_starting(settings, sock, threads):
    os.write(1, b"child\\n")  # one write: the two children share the pipe and must not interleave
    time.sleep(60)  # create_app, in a process that has not installed its own SIGTERM handler yet

production.serve_process = still_starting
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
production.supervise(None, sock, 2, 1)
print("stopped", flush=True)
"""


def test_sigterm_stops_serving_processes_that_are_still_starting() -> None:
    """The supervisor's SIGTERM reaches children still in their start-up: they end, and so does it."""
    supervisor = subprocess.Popen([sys.executable, "-c", SLOW_START], stdout=subprocess.PIPE, text=True)
    try:
        assert supervisor.stdout is not None
        assert [supervisor.stdout.readline() for _ in range(2)] == ["child\n", "child\n"]
        started = time.monotonic()
        supervisor.send_signal(signal.SIGTERM)
        out, _ = supervisor.communicate(timeout=20)
        assert "stopped" in out and supervisor.returncode == 0
        assert time.monotonic() - started < 20
    finally:
        supervisor.kill()
        supervisor.wait()


# Allocates and frees a 2 MB block (under the fixed mmap threshold: it comes from the heap) 200 times, and
# prints the page faults per round. Each round faults its pages in again when the freed top is handed back.
ROUNDS = """
import resource, sys
if sys.argv[1] == "tuned":
    from backend.cli.production import tune_malloc
    tune_malloc()
block = bytearray(2 << 20)
del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    block = bytearray(2 << 20)
    del block
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_tuned_heap_keeps_a_freed_block_for_the_next_one() -> None:
    """serve --production fixes glibc's mmap threshold (tune_malloc); that alone fixes the trim threshold at
    128 KB too, and every photo search faulted its activations in again. A freed block under the trim
    threshold stays for the next: almost no page faults a round."""
    root = Path(__file__).resolve().parents[2]
    faults = float(
        subprocess.run(
            [sys.executable, "-c", ROUNDS, "tuned"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    )
    assert faults < 50  # 512 pages a round when the block goes back each time
