"""Production serving under waitress, started from `lookalike serve --production`.

Why waitress: its I/O thread reads every request whole (headers, then the body, spooled to a temporary file past
a few hundred kilobytes) before a worker thread sees it, and closes connections idle for CHANNEL_TIMEOUT_S. A
client that stalls half-way through its headers or its body holds a socket, never a thread: under gunicorn's
gthread workers 8 such clients took the server offline (tests/e2e/test_slow_clients.py holds 50 and times
/health). With a Qdrant server behind it, several processes share the listening socket (a small pre-fork
supervisor here: each child builds its own app, a child that dies is started again).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from backend.app import create_app
from backend.config import Settings
from backend.core.metrics import MULTIPROC_ENV, multiprocess_dir, process_ended, start_multiprocess_run
from backend.indexing.maintenance import start_in_process_sweep
from backend.serving.embedders import keep_out_of_gc

log = logging.getLogger("backend.serve")
access = logging.getLogger("backend.access")

CHANNEL_TIMEOUT_S = 60  # a connection silent this long is closed (a stalled client, an idle keep-alive)
CONNECTION_LIMIT = 500  # open connections per process before waitress stops accepting more
RESTART_PAUSE_S = 1.0
M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD = -8, -3, -1  # glibc's mallopt parameters
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 4 << 20  # a photo search's activations stay below it, a batch's do not
# Free heap at an arena's top kept for the next forward pass. A fixed mmap threshold also fixes this one at
# glibc's 128 KB, so every photo search gave its activations back and faulted them in again (8,200 page faults
# a search against 1,200 with this; 35-39 ms a describe against 23-27 ms); malloc_trim after background tasks
# still gives back all of it.
TRIM_THRESHOLD_BYTES = 16 << 20


def worker_layout(settings: Settings, workers: int | None, threads: int | None) -> tuple[int, int]:
    """Embedded store: one process (it holds the store's lock), with threads. Qdrant server: several processes."""
    if settings.embedded_index:
        if workers not in (None, 1):
            raise ValueError("the embedded Qdrant store is locked to one process: use --workers 1, or set QDRANT_URL")
        return 1, threads or 8
    return workers or 4, threads or 4


class AccessLog:
    """One line per request (method, path, status, bytes, milliseconds, client) through `backend.access`, so that
    LOG_FORMAT=json makes it JSON like every other line."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.perf_counter()
        status: list[str] = []

        def recording(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        sent = 0
        try:
            for chunk in self.app(environ, recording):
                sent += len(chunk)
                yield chunk
        finally:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            access.info(
                '%s "%s %s" %s %d %.1fms',
                environ.get("REMOTE_ADDR", "-"),
                environ.get("REQUEST_METHOD", "-"),
                path,
                status[0] if status else "-",
                sent,
                (time.perf_counter() - started) * 1000,
            )


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    return sock


def serve_process(settings: Settings, sock: socket.socket, threads: int) -> None:
    """One waitress server on `sock` until SIGTERM or SIGINT: the app built here, in the process that serves."""
    import waitress.server

    app = create_app(settings)  # in the serving process, the one that holds the embedded store
    keep_out_of_gc()  # what lives as long as the process is not scanned by each full collection
    start_in_process_sweep(app)
    body_limit = max(int(app.config.get("MAX_CONTENT_LENGTH") or 0), settings.import_max_bytes) + (1 << 20)
    server = waitress.server.create_server(
        AccessLog(app),
        sockets=[sock],
        threads=threads,
        channel_timeout=CHANNEL_TIMEOUT_S,
        connection_limit=CONNECTION_LIMIT,
        max_request_body_size=body_limit,
        asyncore_use_poll=True,  # select() stops at 1,024 descriptors
        clear_untrusted_proxy_headers=False,  # TRUSTED_PROXIES (ProxyFix in the app) decides what they mean
        ident="lookalike",
    )

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()


def supervise(settings: Settings, sock: socket.socket, processes: int, threads: int) -> None:
    """`processes` children serving the one socket; a child that dies is started again; SIGTERM stops them all."""
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def start(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # the child
            # Not the supervisor's handler: a SIGTERM while this process still starts (create_app takes seconds)
            # would only signal its siblings and leave it serving, and the supervisor waiting, for ever.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            code = 0
            try:
                serve_process(settings, sock, threads)
            except BaseException:
                log.exception("serving process %d failed", slot)
                code = 1
            finally:
                os._exit(code)
        children[pid] = slot

    def stop_all(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    for slot in range(processes):
        start(slot)
    log.info("serving from %d processes of %d threads", processes, threads)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in children:
            continue
        slot = children.pop(pid)
        process_ended(pid)
        if stopping:
            continue
        log.warning("serving process %d (pid %d) exited with status %d: starting it again", slot, pid, status)
        time.sleep(RESTART_PAUSE_S)
        start(slot)


def tune_malloc() -> None:
    """glibc keeps freed heap: each import and reindex left the serving process tens of MB larger (bench/soak.py).
    Its threshold for giving a large block its own mapping rises to the largest block freed, so the network's
    activations (megabytes each) come from the heap after the first and their pages stay: a fixed threshold
    hands them back when freed. And two arenas for the threads started from here on, rather than one per
    thread up to 8 per core; and up to TRIM_THRESHOLD_BYTES of free heap kept at an arena's top, so that a
    search's activations are not faulted in again each time. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def run(settings: Settings, *, host: str, port: int, workers: int | None, threads: int | None) -> None:
    tune_malloc()  # before any serving or background thread starts
    processes, per_process = worker_layout(settings, workers, threads)
    if processes > 1 and multiprocess_dir() is None:
        log.warning("/metrics shows one serving process at a time: set %s to count all %d", MULTIPROC_ENV, processes)
    start_multiprocess_run()
    sock = listening_socket(host, port)
    print(f" * Serving on http://{host}:{port} (waitress, {processes} x {per_process} threads)", file=sys.stderr)
    if processes == 1:
        serve_process(settings, sock, per_process)
    else:
        supervise(settings, sock, processes, per_process)
