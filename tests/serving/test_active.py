"""A serving process's Edge shards across a reindex switch: the replaced one stays open for the grace only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from backend.config import Settings
from backend.index import IndexPoint, IndexUnavailable, close_all, store_for
from backend.serving.active import Active, index_of
from tests.utils.settings import make_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setattr("backend.index.base.RELEASE_GRACE_S", 0.2)
    yield make_settings(tmp_path / "var")
    close_all()


def point(image_id: int) -> IndexPoint:
    return IndexPoint(image_id, np.full(1000, image_id, dtype=np.float32), {"product_id": image_id})


def test_a_late_request_on_the_replaced_shard_neither_reopens_it_nor_closes_the_new_one(settings: Settings) -> None:
    old = Active("products-v1-1", "v1")
    new = Active("products-v2-2", "v2")
    old_index = index_of(settings, old)
    old_index.upsert([point(1)])
    new_index = index_of(settings, new)  # the first request after the switch: the old shard is retiring
    new_index.upsert([point(2)])

    late = index_of(settings, old)  # a request that read the old name just before the switch
    assert late is old_index and late.ids() == {1}
    assert index_of(settings, new) is new_index  # the late request did not retire the new shard

    time.sleep(0.5)  # past the grace
    assert new_index.ids() == {2}
    with pytest.raises(IndexUnavailable, match="replaced by a reindex"):
        index_of(settings, old)  # closed for good in this process: never opened again
    with pytest.raises(IndexUnavailable):
        old_index.ids()
    assert store_for(settings).open(new.name) is new_index


def test_a_query_during_an_in_process_build_never_retires_the_collection_being_built(settings: Settings) -> None:
    """The embedded server's "Activate": the build runs in a thread of the serving process, beside queries."""
    store = store_for(settings)
    live = Active("products-v1-1", "v1")
    index_of(settings, live).upsert([point(1)])
    building = store.open_for_build("products-v2-2")
    building.upsert([point(2)])

    index_of(settings, live)  # a query (or the sweep) while the build runs: lets go of every other collection
    time.sleep(0.5)  # past the grace
    building.upsert([point(3)])  # the build goes on: its shard is still open
    assert building.ids() == {2, 3}

    store.close_collection("products-v2-2")  # the build ends; after the switch queries open it again
    assert index_of(settings, Active("products-v2-2", "v2")).ids() == {2, 3}
