"""Fixtures: real SQLite and PostgreSQL databases with migrations applied, a fresh index per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from flask_migrate import upgrade
from sqlalchemy import text

# Tests choose every setting themselves: nothing from the developer's shell or .env leaks in.
for _name in (
    "DATABASE_URL",
    "REDIS_URL",
    "QDRANT_URL",
    "QDRANT_API_KEY",
    "QDRANT_PATH",
    "MEDIA_ROOT",
    "ADMIN_TOKEN",
    "SECRET_KEY",
    "VAR_DIR",
    "ENVIRONMENT",
    "DEVICE",
    "EMBED_IMAGE_SIZE",
    "DEFAULT_MODEL",
):
    os.environ.pop(_name, None)

from backend.app import create_app  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.extensions import db  # noqa: E402
from backend.index import close_all  # noqa: E402

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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    with fresh_database("lookalike_test", "these tests") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    app = create_app(make_settings(tmp_path_factory.mktemp("pg-migrate"), database_url=postgres_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return postgres_url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("migrated_postgres")  # type: ignore[no-any-return]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url=database_url)


@pytest.fixture
def app(settings: Settings) -> Iterator[object]:
    app = create_app(settings)
    with app.app_context():
        upgrade()  # a no-op on the already migrated PostgreSQL database
    yield app
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            tables = "product_images, products, model_versions, index_collections"
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    close_all()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()
