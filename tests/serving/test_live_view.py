"""A serving process's view of the live collections: read once per LIVE_CHECK_S, at once after a switch this host
made, and never the cause of a wrong answer when it is a moment old."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from flask import Flask
from sqlalchemy import event, update

from backend.config import Settings
from backend.core.extensions import db
from backend.db.models import CollectionState, ImageStatus, IndexCollection, Product, ProductImage
from backend.index import IndexPoint, store_for
from backend.services.similar import SimilarParams, similar_to_product
from backend.serving.active import live_view, note_switch


@pytest.fixture
def ctx(app: Flask) -> Iterator[Settings]:
    with app.app_context():
        yield app.config["SETTINGS"]


@pytest.fixture
def statements(ctx: Settings) -> Iterator[list[str]]:
    """Every SQL statement the database is sent from here on."""
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    yield sent
    event.remove(db.engine, "before_cursor_execute", count)


def switch_rows(to: str, version: str) -> None:
    """A switch as another host makes it: the rows change, this host's stamp file does not."""
    db.session.execute(
        update(IndexCollection).where(IndexCollection.state == CollectionState.active).values(state="retired")
    )
    db.session.add(IndexCollection(name=to, model_version=version, state=CollectionState.active))
    db.session.commit()


def test_the_view_is_read_once_per_check_and_again_at_once_after_a_switch_here(
    ctx: Settings, statements: list[str]
) -> None:
    first = live_view(session=db.session, settings=ctx)
    db.session.rollback()
    statements.clear()
    for _ in range(20):
        assert live_view(session=db.session, settings=ctx) is first
    assert statements == []  # no query while the view is fresh

    switch_rows("products-other-1", "other")
    assert live_view(session=db.session, settings=ctx).active.name == first.active.name  # within LIVE_CHECK_S
    note_switch(ctx)  # what a switch on this host does after its commit
    assert live_view(session=db.session, settings=ctx).active.name == "products-other-1"

    switch_rows("products-third-2", "third")  # another host's switch: seen once LIVE_CHECK_S has passed
    time.sleep(ctx.live_check_s + 0.05)
    assert live_view(session=db.session, settings=ctx).active.name == "products-third-2"
    assert live_view(session=db.session, settings=ctx, fresh=True).active.name == "products-third-2"


def test_a_view_a_moment_old_still_answers_from_the_new_collection(ctx: Settings) -> None:
    """A switch this process has not read yet: the photos say the new model, the view the old collection. The
    query reads the view again and answers from the new collection rather than a 409."""
    old = live_view(session=db.session, settings=ctx).active
    rng = np.random.default_rng(0)
    for n in (1, 2, 3):
        db.session.add(Product(id=n, sku=f"SKU-{n}", title=f"Dress {n}", category="dress", attributes={}))
        db.session.add(
            ProductImage(
                id=n,
                product_id=n,
                stored_name=f"ab/{n:032x}.jpg",
                sha256=f"{n:064x}",
                width=64,
                height=64,
                content_type="image/jpeg",
                size_bytes=1,
                status=ImageStatus.indexed,
                model_version="v2",
                indexed_at=datetime.now(UTC),
            )
        )
    db.session.commit()
    new = store_for(ctx).open("products-v2-1")
    vectors = rng.normal(size=(3, 1000)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01  # product 2 looks like product 1
    new.upsert([IndexPoint(n, vectors[n - 1], {"product_id": n, "category": "dress"}) for n in (1, 2, 3)])
    switch_rows("products-v2-1", "v2")  # not noted: this process's view still names the old collection
    assert live_view(session=db.session, settings=ctx).active.name == old.name

    found = similar_to_product(session=db.session, settings=ctx, product_id=1, params=SimilarParams(limit=2))
    assert found.model_version == "v2"
    assert [n.product_id for n, _ in found.items] == [2, 3]
    assert live_view(session=db.session, settings=ctx).active.name == "products-v2-1"  # the view read again
