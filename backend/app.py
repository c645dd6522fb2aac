"""The Flask app factory: the web app and nothing else (the CLI registers its own commands)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from werkzeug.middleware.proxy_fix import ProxyFix

from backend.api import BLUEPRINTS
from backend.api.errors import register_error_processor
from backend.api.headers import security_headers
from backend.api.openapi import merge_duplicate_schemas
from backend.api.schemas import ErrorOut
from backend.config import Environment, Settings
from backend.core.cors import register_cors
from backend.core.extensions import db, limiter, migrate
from backend.core.logs import configure_logging
from backend.core.metrics import observe_request, start_timer
from backend.core.turns import Turns
from backend.web import BLUEPRINTS as PAGES
from backend.web.assets import SWAGGER_SETTINGS
from backend.web.pages import csrf
from backend.worker.celery_app import celery_init_app

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
log = logging.getLogger("lookalike")


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets readers run beside the writer.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


# Connections a process keeps open: a serving process's threads (8 on the embedded store) each hold one during a
# request; more are opened for a burst and closed after it.
POOL_SIZE = 10


def engine_options(database_url: str) -> dict[str, Any]:
    """PostgreSQL: a connection is tested when taken from the pool (one round trip; the server may have dropped
    it). SQLite: a file, never dropped, so no test (the ping was 5% of a loaded server's samples in py-spy); and
    connections kept rather than opened and closed per burst (each open runs the pragmas)."""
    sqlite = make_url(database_url).get_backend_name() == "sqlite"
    return {"pool_pre_ping": not sqlite, "pool_size": POOL_SIZE, "max_overflow": 2 * POOL_SIZE}


class StartupError(RuntimeError):
    """Settings the app cannot start with, said in one line."""


def _one_problem(location: tuple[int | str, ...], message: str) -> str:
    message = message.removeprefix("Value error, ")
    return f"{'.'.join(str(part) for part in location).upper()}: {message}" if location else message


def read_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(_one_problem(error["loc"], error["msg"]) for error in exc.errors())
        raise StartupError(f"invalid settings: {problems}") from None


def create_app(settings: Settings | None = None) -> APIFlask:
    """Build the app from `settings` (default: read from the environment)."""
    settings = settings or read_settings()
    try:
        make_url(settings.database_url)
    except ArgumentError:
        raise StartupError(
            "DATABASE_URL is not a database URL: expected postgresql://user:password@host:5432/name"
            " (or leave it unset for SQLite under VAR_DIR)"
        ) from None
    configure_logging(settings)

    app = APIFlask(
        "lookalike",
        title="Lookalike API",
        version="1",
        spec_path="/openapi.json",
        docs_path="/docs",
        static_folder=None,  # type: ignore[arg-type]  # the pages' blueprint serves /static
    )
    admin_token, made_up = settings.resolve_admin_token()
    app.config.update(
        SETTINGS=settings,
        ADMIN_TOKEN=admin_token,
        ADMIN_TOKEN_MADE_UP=made_up,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings.database_url),
        # Whole request: every photo at its limit plus the form fields.
        MAX_CONTENT_LENGTH=settings.max_upload_bytes * settings.max_images_per_request + 1024 * 1024,
        VALIDATION_ERROR_STATUS_CODE=400,
        VALIDATION_ERROR_DESCRIPTION="Invalid field or parameter",
        VALIDATION_ERROR_SCHEMA=ErrorOut,
        HTTP_ERROR_SCHEMA=ErrorOut,
        RATELIMIT_ENABLED=settings.rate_limits_enabled,
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_KEY_PREFIX="lookalike-limits",
        # The admin pages' session: a signed cookie, never readable by scripts, never sent cross-site.
        SESSION_COOKIE_NAME="lookalike_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.environment is Environment.production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.admin_session_hours),
        # CSRF: the pages' blueprints check every POST; the API's bearer tokens need none.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=int(settings.admin_session_hours * 3600),
        **SWAGGER_SETTINGS,
    )
    for folder in (settings.var_dir, settings.media_root, settings.qdrant_path):
        folder.mkdir(parents=True, exist_ok=True)

    app.json.sort_keys = False  # type: ignore[attr-defined]
    if settings.trusted_proxies:
        hops = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    if settings.similar_turns:
        app.wsgi_app = Turns(app.wsgi_app, settings.similar_turns)  # type: ignore[method-assign]
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS), render_as_batch=True)
    limiter.init_app(app)
    register_error_processor(app)
    app.before_request(start_timer)
    app.after_request(observe_request)
    app.after_request(security_headers)
    register_cors(app)
    app.spec_processor(merge_duplicate_schemas)

    csrf.init_app(app)
    for blueprint in (*BLUEPRINTS, *PAGES):
        app.register_blueprint(blueprint)
    celery_init_app(app)
    return app
