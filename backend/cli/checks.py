"""Checks a command makes before it starts: the database answers and has the schema the code needs."""

from __future__ import annotations

import click
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import upgrade
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from backend.app import MIGRATIONS
from backend.config import Settings, current_settings
from backend.core.extensions import db
from backend.serving.active import store_held_elsewhere


def ready_database(*, migrate_embedded: bool = False) -> None:
    """Stop with one line naming the fix when the database is unreachable or behind the code.

    `migrate_embedded`: the embedded default's SQLite file is brought up to date here instead (it is
    this process's own database: nobody else migrates it)."""
    url = make_url(current_settings().database_url)
    where = url.render_as_string(hide_password=True)
    try:
        with db.engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise click.ClickException(
            f"cannot reach the database {where} ({reason}): is it running, and does DATABASE_URL name it?"
        ) from None
    heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    if current == heads:
        return
    if migrate_embedded and url.get_backend_name() == "sqlite":
        upgrade()
        click.echo(" * Database: migrated to the latest schema")
        return
    state = "has no tables yet" if not current else f"is at revision {', '.join(sorted(current))}"
    raise click.ClickException(
        f"the database {where} {state}, the code needs {', '.join(sorted(heads))}: run `lookalike db upgrade`"
    )


def embedded_store_free(settings: Settings, *, what: str, instead: str) -> None:
    """On the embedded default, stop with one line before anything is written when another process (a running
    `lookalike serve`) holds the store: the store is locked to one process. `what` says what did not happen,
    `instead` what to do."""
    if not settings.embedded_index:
        return
    if store_held_elsewhere(session=db.session, settings=settings):
        raise click.ClickException(
            f"the embedded vector store under {settings.qdrant_path} is held by another process (a running"
            f" `lookalike serve`?); {what}. {instead}"
        )
