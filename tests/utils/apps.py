"""Test apps: migrated on chosen settings, closed at the end; the live index of an app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask_migrate import upgrade

from backend.app import create_app
from backend.config import Settings
from backend.core.extensions import db
from backend.index import VectorIndex, close_all
from backend.serving.active import active_index


@contextmanager
def migrated_app(settings: Settings) -> Iterator[Any]:
    """An app on `settings` with its database migrated; connections and stores closed at the end."""
    app = create_app(settings)
    with app.app_context():
        upgrade()
    try:
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        close_all()


def live_index(app: Any) -> VectorIndex:
    """The active collection's index, opened in this process (call inside or outside an app context)."""
    with app.app_context():
        return active_index(session=db.session, settings=app.config["SETTINGS"])[1]
