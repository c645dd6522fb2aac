"""Fixtures: real SQLite and PostgreSQL databases with migrations applied, a fresh index per test.

Helpers live in tests/utils; nothing is imported from here."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

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

from flask import Flask  # noqa: E402

from backend.app import create_app  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.core.extensions import db  # noqa: E402
from backend.index import close_all  # noqa: E402
from backend.serving.active import forget_live  # noqa: E402
from tests.utils.apps import migrated_app  # noqa: E402
from tests.utils.settings import fresh_database, make_settings  # noqa: E402


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
            tables = "photo_duplicates, product_images, products, model_versions, index_collections, imports,"
            tables += " shopper_events, experiments"
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    close_all()
    forget_live()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """More apps, on SQLite under their own VAR_DIR with the settings given, migrated; closed at the end."""
    with ExitStack() as apps:

        def make(name: str = "var", **overrides: object) -> Flask:
            app: Flask = apps.enter_context(migrated_app(make_settings(tmp_path / name, **overrides)))
            return app

        yield make
