"""A live collection records the descriptors' definition it was built with; an older one is named with the
command that moves it, and a reindex does."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update

from backend.core.extensions import db
from backend.db.models import IndexCollection
from backend.serving.active import active_collection, stale_descriptors_note
from ml.versions import DESCRIPTORS
from tests.utils import images
from tests.utils.api import upload
from tests.utils.cli import cli_runner


def test_a_collection_of_older_descriptors_is_named_until_a_reindex(app: Any, client: Any) -> None:
    settings = app.config["SETTINGS"]
    assert upload(client, "P0", images.png(1)).status_code == 201
    with app.app_context():
        old = active_collection(session=db.session, settings=settings)
        assert db.session.get(IndexCollection, old.name).descriptors == DESCRIPTORS  # type: ignore[union-attr]
        assert stale_descriptors_note(session=db.session, settings=settings) is None
        # as a row migrated from before the record reads
        db.session.execute(update(IndexCollection).where(IndexCollection.name == old.name).values(descriptors=None))
        db.session.commit()
        note = stale_descriptors_note(session=db.session, settings=settings)
    assert note is not None and old.name in note and "lookalike reindex" in note

    result = cli_runner(app).invoke(args=["reindex", "--drop-wait", "5"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        new = active_collection(session=db.session, settings=settings)
        assert new.name != old.name
        assert db.session.get(IndexCollection, new.name).descriptors == DESCRIPTORS  # type: ignore[union-attr]
        assert stale_descriptors_note(session=db.session, settings=settings) is None
