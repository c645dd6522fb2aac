"""Test settings and databases: every test chooses its settings; PostgreSQL is real and fresh."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from backend.config import Settings

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def make_settings(var_dir: Path, **overrides: object) -> Settings:
    # The untrained network at 64 px: fast, and its vectors are what the index tests need (pixels, not meaning).
    values: dict[str, object] = {
        "var_dir": var_dir,
        "admin_token": TOKEN,
        "embed_image_size": 64,
        "default_model": "untrained",
        "device": "cpu",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@contextmanager
def fresh_database(prefix: str, needed_by: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database, dropped on exit. PostgreSQL is required: the test fails without it."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is required for {needed_by} and is not reachable at {POSTGRES_URL}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
