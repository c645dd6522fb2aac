"""The full stack in real processes for fault tests: a private Redis, a fresh PostgreSQL database,
`lookalike worker` subprocesses (prefork pool) owning the embedded Qdrant Edge store, and an app in
the test process that uploads through the API (it never opens the store while a worker runs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask_migrate import upgrade
from sqlalchemy import func, select

from backend.app import create_app
from backend.core.extensions import db
from backend.db.models import ProductImage
from backend.index import close_all
from tests.utils.server import LOOKALIKE, free_port
from tests.utils.settings import TOKEN, fresh_database

ROOT = Path(__file__).resolve().parents[2]

# Short timings so that the fault tests end in seconds; the relations between them are the production ones.
FAST = {
    "EMBED_IMAGE_SIZE": "64",
    "DEFAULT_MODEL": "untrained",
    "EMBED_BATCH_SIZE": "4",
    "DEVICE": "cpu",
    "TASK_SOFT_TIME_LIMIT_S": "60",
    "BROKER_VISIBILITY_TIMEOUT_S": "300",
    "TASK_MAX_RETRIES": "2",
    "RETRY_BACKOFF_S": "0.2",
    "RETRY_BACKOFF_MAX_S": "1",
    "MAX_ATTEMPTS": "2",
    "PENDING_STALE_S": "2",
}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class RedisServer:
    """A redis-server of our own, without persistence (a restart loses what it held, like the default)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required for the fault tests (Debian package redis-server)")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.workdir / "redis.log").open("a")
        self.process = subprocess.Popen([*command, "--dir", str(self.workdir)], stdout=log, stderr=log)
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_for(lambda: _pings(client), 10, "redis-server to start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM: finish the task in hand); kill if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """kill -9 of the worker's whole process group: the main process and its pool."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class Stack:
    tmp: Path
    database_url: str
    redis: RedisServer
    env: dict[str, str]
    app: Any
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, *extra: str, env: dict[str, str] | None = None) -> Worker:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        command = [LOOKALIKE, "worker", "--loglevel=INFO", *extra]
        with log.open("w") as out:
            process = subprocess.Popen(
                command,
                env={**self.env, **(env or {})},
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so that a test can kill all of it
            )
        worker = Worker(process, log)
        self.workers.append(worker)
        wait_for(lambda: " ready." in worker.text() or process.poll() is not None, 60, "the worker to be ready")
        assert process.poll() is None, worker.text()[-3000:]
        return worker

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LOOKALIKE, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )

    def rows(self) -> list[ProductImage]:
        with self.app.app_context():
            db.session.expire_all()
            rows = list(db.session.scalars(select(ProductImage).order_by(ProductImage.id)))
            db.session.expunge_all()
            return rows

    def count(self, status: str) -> int:
        with self.app.app_context():
            query = select(func.count()).select_from(ProductImage).where(ProductImage.status == status)
            return int(db.session.scalar(query) or 0)

    def wait_all(self, status: str, timeout: float) -> None:
        total = len(self.rows())
        wait_for(lambda: self.count(status) == total, timeout, f"all {total} photos {status}: {self.summary()}", 0.2)

    def summary(self) -> str:
        return str([(r.id, r.status, r.attempts, (r.error or "")[:80]) for r in self.rows()])

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with fresh_database("lookalike_fault", "the fault tests") as database_url:
        yield from _stack(tmp_path, database_url)


def _stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    server = RedisServer(tmp_path)
    server.start()
    env = {k: v for k, v in os.environ.items() if k not in {"QDRANT_URL", "QDRANT_PATH", "MEDIA_ROOT"}}
    env.update(FAST)
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=server.url,
        VAR_DIR=str(tmp_path / "var"),
        ADMIN_TOKEN=TOKEN,
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    from backend.config import Settings

    settings = Settings(
        _env_file=None,
        **{
            k.lower(): v
            for k, v in env.items()
            if k in FAST or k in {"DATABASE_URL", "REDIS_URL", "VAR_DIR", "ADMIN_TOKEN"}
        },
    )  # type: ignore[arg-type]
    app = create_app(settings)
    with app.app_context():
        upgrade()
    built = Stack(tmp_path, database_url, server, env, app)
    try:
        yield built
    finally:
        for worker in built.workers:
            worker.kill()
        close_all()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        server.stop()
