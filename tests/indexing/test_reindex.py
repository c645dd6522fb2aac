"""Reindex: a new collection per build, an atomic switch, the old one dropped, queries answering all along."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.extensions import db
from backend.index import store_for
from backend.indexing import reindex as reindex_module
from backend.indexing.reindex import reindex
from backend.services import similar as similar_use_case
from backend.serving.active import active_collection
from backend.worker.tasks import enqueue_embedding
from tests.utils import images
from tests.utils.api import AUTH, upload
from tests.utils.apps import migrated_app
from tests.utils.server import LOOKALIKE, running_server
from tests.utils.settings import make_settings


class QueryLoop(threading.Thread):
    """Ask for similar items over and over; record every answer that is not a full 200."""

    def __init__(self, ask: Any, product_ids: list[int]) -> None:
        super().__init__(daemon=True)
        self.ask, self.product_ids = ask, product_ids
        self.stop = threading.Event()
        self.answers = 0
        self.problems: list[str] = []
        self.versions: set[str] = set()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            product_id = self.product_ids[n % len(self.product_ids)]
            n += 1
            status, body = self.ask(product_id)
            self.answers += 1
            if status != 200:
                self.problems.append(f"{product_id}: {status} {body}")
            elif not body["items"]:
                self.problems.append(f"{product_id}: empty answer")
            else:
                self.versions.add(body["model_version"])


def test_reindex_while_a_query_loop_runs_embedded(tmp_path: Path) -> None:
    """Real processes: `lookalike serve` holds the Edge shard; `lookalike reindex` builds the next one beside it."""
    with running_server(tmp_path) as (base, token):
        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for n in range(8):
            files = [("images", (f"{n}-{k}.png", images.png(n * 10 + k), "image/png")) for k in range(2)]
            data = {"sku": f"S{n}", "title": f"Item {n}", "category": "dress"}
            response = httpx.post(f"{base}/api/v1/products", data=data, files=files, headers=auth, timeout=60)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        before = httpx.get(f"{base}/api/v1/stats").json()["index"]["collection"]

        def ask(product_id: int) -> tuple[int, Any]:
            response = httpx.get(f"{base}/api/v1/products/{product_id}/similar?limit=3", timeout=30)
            return response.status_code, response.json()

        loop = QueryLoop(ask, ids)
        loop.start()
        time.sleep(1)
        env = {
            k: v for k, v in os.environ.items() if k not in {"ADMIN_TOKEN", "DATABASE_URL", "REDIS_URL", "QDRANT_URL"}
        }
        env.update(VAR_DIR=str(tmp_path / "var"), EMBED_IMAGE_SIZE="64", DEFAULT_MODEL="untrained", DEVICE="cpu")
        result = subprocess.run(
            [LOOKALIKE, "reindex", "--drop-wait", "60"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        time.sleep(2)
        loop.stop.set()
        loop.join(timeout=30)
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout)
        assert report["embedded"] == 16 and report["previous"] == before and report["dropped_previous"] is True
        assert "reindex: 100%" in result.stderr.replace("\r", "\n")  # the progress bar
        stats = httpx.get(f"{base}/api/v1/stats").json()
        assert stats["index"]["collection"] == report["collection"] != before
        assert stats["index"]["points"] == 16 and stats["images"]["indexed"] == 16
    assert loop.answers > 20 and loop.problems == []
    assert sorted(p.name for p in (tmp_path / "var" / "qdrant").iterdir()) == [report["collection"]]


@pytest.fixture
def server_app(tmp_path: Path) -> Any:
    """The Qdrant server code path, through qdrant-client's in-process mode."""
    with migrated_app(make_settings(tmp_path / "var", qdrant_url=":memory:")) as app:
        yield app


def test_reindex_on_the_server_moves_the_alias_and_drops_the_old_collection(server_app: Any) -> None:
    client = server_app.test_client()
    ids = [upload(client, f"S{n}", images.png(n), images.png(n + 50)).json["id"] for n in range(6)]
    settings = server_app.config["SETTINGS"]
    with server_app.app_context():
        before = active_collection(session=db.session, settings=settings).name

    def ask(product_id: int) -> tuple[int, Any]:
        response = client.get(f"/api/v1/products/{product_id}/similar?limit=3")
        return response.status_code, response.json

    loop = QueryLoop(ask, ids)
    loop.start()
    with server_app.app_context():
        report = reindex(session=db.session, settings=settings, enqueue=enqueue_embedding)
    time.sleep(0.5)
    loop.stop.set()
    loop.join(timeout=30)
    assert loop.problems == [] and loop.answers > 5
    assert report.embedded == 12 and report.dropped_previous
    qdrant = store_for(settings).client
    aliases = {a.alias_name: a.collection_name for a in qdrant.get_aliases().aliases}
    assert aliases == {"products": report.collection}
    assert store_for(settings).list() == [report.collection] and before != report.collection
    assert qdrant.count("products").count == 12  # the alias answers for the new collection


def test_photos_arriving_during_a_reindex_are_caught_up(server_app: Any) -> None:
    """A photo uploaded while the new collection is built is embedded into it after the switch."""
    client = server_app.test_client()
    upload(client, "A", images.png(1))
    settings = server_app.config["SETTINGS"]
    late: list[int] = []

    def upload_during_build(n: int) -> None:
        if not late:
            late.append(upload(client, "LATE", images.png(2)).json["images"][0]["id"])

    with server_app.app_context():
        report = reindex(session=db.session, settings=settings, enqueue=enqueue_embedding, progress=upload_during_build)
    assert report.embedded == 1 and report.caught_up == 1
    body = client.get(f"/api/v1/images/{late[0]}/similar").json
    assert body["model_version"] == report.model_version and [i["product"]["sku"] for i in body["items"]] == ["A"]
    stats = client.get("/api/v1/stats").json
    assert stats["index"] == {**stats["index"], "collection": report.collection, "points": 2}


def test_a_query_that_read_the_old_collection_before_the_switch_still_answers(
    server_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request reads the active name, the reindex switches, then the request searches the old name."""
    client = server_app.test_client()
    ids = [upload(client, f"S{n}", images.png(n)).json["id"] for n in range(3)]
    settings = server_app.config["SETTINGS"]
    with server_app.app_context():
        before = active_collection(session=db.session, settings=settings).name
    read, resume = threading.Event(), threading.Event()
    real_indexed_photos = similar_use_case.indexed_photos

    def paused_indexed_photos(*args: Any, **kwargs: Any) -> Any:  # the request has read the active collection
        read.set()
        resume.wait(30)
        return real_indexed_photos(*args, **kwargs)

    monkeypatch.setattr(similar_use_case, "indexed_photos", paused_indexed_photos)
    answer: list[Any] = []
    request = threading.Thread(target=lambda: answer.append(client.get(f"/api/v1/products/{ids[0]}/similar")))
    request.start()
    assert read.wait(30)

    def build() -> None:
        with server_app.app_context():
            reindex(session=db.session, settings=settings, enqueue=enqueue_embedding)

    builder = threading.Thread(target=build)
    builder.start()
    deadline = time.monotonic() + 60
    with server_app.app_context():
        while active_collection(session=db.session, settings=settings).name == before:
            assert time.monotonic() < deadline
            db.session.rollback()
            time.sleep(0.05)
    time.sleep(1)  # well past the moment the old collection used to be dropped
    resume.set()
    request.join(30)
    builder.join(60)
    response = answer[0]
    assert response.status_code == 200, response.json
    assert {i["product"]["id"] for i in response.json["items"]} == set(ids[1:])
    assert before not in store_for(settings).list()  # dropped after the grace


def test_changes_between_the_reindex_pass_and_its_switch_reach_the_new_collection(
    server_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete and a price change that land after the reindex read the database, before it switches."""
    client = server_app.test_client()
    keep = upload(client, "KEEP", images.png(1), price="10").json
    gone = upload(client, "GONE", images.png(2)).json
    settings = server_app.config["SETTINGS"]
    real_switch = reindex_module.switch_to

    def changes_then_switch(*args: Any, **kwargs: Any) -> int:
        assert client.delete(f"/api/v1/products/{gone['id']}", headers=AUTH).status_code == 204
        assert client.patch(f"/api/v1/products/{keep['id']}", json={"price": 99}, headers=AUTH).status_code == 200
        return real_switch(*args, **kwargs)

    monkeypatch.setattr(reindex_module, "switch_to", changes_then_switch)
    with server_app.app_context():
        report = reindex(session=db.session, settings=settings, enqueue=enqueue_embedding, drop_wait_s=0)
    assert report.embedded == 2  # both were in the database while it embedded
    with server_app.app_context():
        index = store_for(settings).open(report.collection)
        assert index.ids() == {keep["images"][0]["id"]}
        assert [p["price"] for p in index.payloads().values()] == [99.0]


def test_a_collection_from_before_the_look_vectors_moves_to_them_by_a_reindex(tmp_path: Path) -> None:
    """An existing install: its live Edge shard has only the 1000-d vector; the reindex builds one with all three."""
    import qdrant_edge as qe

    settings = make_settings(tmp_path / "var")
    with migrated_app(settings) as app:
        with app.app_context():
            old = active_collection(session=db.session, settings=settings).name
        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=1000, distance=qe.Distance.Euclid))
        qe.EdgeShard.create(str(settings.qdrant_path / old), config).close()  # as the earlier releases made it
        client = app.test_client()
        ids = [upload(client, f"S{n}", images.png(n), images.png(n + 50)).json["id"] for n in range(4)]
        assert not store_for(settings).open(old).descriptors
        assert client.get(f"/api/v1/products/{ids[0]}/similar").status_code == 200  # default look: as before
        refused = client.get(f"/api/v1/products/{ids[0]}/similar?look=1")
        assert refused.status_code == 409 and "reindex" in refused.json["message"]
        with app.app_context():
            report = reindex(session=db.session, settings=settings, enqueue=enqueue_embedding)
        assert report.embedded == 8 and report.previous == old
        new = store_for(settings).open(report.collection)
        assert new.descriptors and len(new.named_vectors(sorted(new.ids()), "look")) == 8
        assert new.kinds and len(new.named_vectors(sorted(new.ids()), "kind")) == 8
        answer = client.get(f"/api/v1/products/{ids[0]}/similar?look=1")
        assert answer.status_code == 200 and len(answer.json["items"]) == 3


def test_a_query_the_index_refuses_across_a_switch_is_asked_again_on_the_new_collection(server_app: Any) -> None:
    """The old collection let go under a request slower than the grace: the request asks the new one, once."""
    from backend.index import IndexUnavailable
    from backend.services.similar import SimilarItems, across_a_switch

    client = server_app.test_client()
    upload(client, "S0", images.png(0))
    settings = server_app.config["SETTINGS"]
    asked: list[str] = []

    def query(active: Any) -> SimilarItems:
        asked.append(active.name)
        if len(asked) == 1:
            reindex(session=db.session, settings=settings, enqueue=enqueue_embedding)  # the switch, meanwhile
            raise IndexUnavailable("the collection was let go")
        return SimilarItems(active.model_version)

    with server_app.app_context():
        across_a_switch(db.session, settings, query)
        assert len(asked) == 2 and asked[0] != asked[1]
        assert asked[1] == active_collection(session=db.session, settings=settings).name

        def down(active: Any) -> SimilarItems:
            raise IndexUnavailable("the store is away")

        with pytest.raises(IndexUnavailable):  # no switch: the refusal stands
            across_a_switch(db.session, settings, down)


def test_the_serving_process_reindexes_without_loading_a_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded server's own reindex (Activate): the built shard stays open for its queries, and the old one
    is dropped without opening it. Loading an Edge shard holds the GIL for its whole load, which stalled every
    request of the process for up to a second at the switch and again at the drop (bench/soak.py)."""
    import qdrant_edge as qe

    settings = make_settings(tmp_path / "var")
    with migrated_app(settings) as app:
        client = app.test_client()
        ids = [upload(client, f"S{n}", images.png(n), images.png(n + 50)).json["id"] for n in range(4)]
        assert client.get(f"/api/v1/products/{ids[0]}/similar").status_code == 200  # the old shard open here
        with app.app_context():
            old = active_collection(session=db.session, settings=settings).name
        loads: list[str] = []
        real_load = qe.EdgeShard.load
        monkeypatch.setattr(qe.EdgeShard, "load", lambda path, *a: loads.append(path) or real_load(path, *a))
        reports: list[Any] = []
        measured: list[tuple[str, bool]] = []  # (collection, inside the reindex's own preparation)
        preparing = threading.Event()
        real_measure = similar_use_case._measure_scales

        def measure(index: Any, key: Any, *args: Any) -> Any:
            measured.append((key[0], preparing.is_set()))
            return real_measure(index, key, *args)

        def prepared(name: str, index: Any) -> None:
            preparing.set()
            similar_use_case.prepare_collection(name, index, settings)
            preparing.clear()

        monkeypatch.setattr(similar_use_case, "_measure_scales", measure)

        def build() -> None:
            with app.app_context():
                reports.append(
                    reindex(session=db.session, settings=settings, enqueue=enqueue_embedding, prepare=prepared)
                )

        builder = threading.Thread(target=build)
        builder.start()
        deadline = time.monotonic() + 120
        with app.app_context():
            while active_collection(session=db.session, settings=settings).name == old:
                assert builder.is_alive() and time.monotonic() < deadline, "the reindex did not switch"
                db.session.rollback()
                time.sleep(0.02)
        store = store_for(settings)
        store.release_others(keep=old)  # a late request that read the old name before the switch
        answers = []
        while builder.is_alive():  # queries on the new collection: they let the old one go after the grace
            answers.append(client.get(f"/api/v1/products/{ids[len(answers) % 4]}/similar").status_code)
            time.sleep(0.1)
        builder.join()
        report = reports[0]
        assert report.dropped_previous and report.previous == old and report.embedded == 8
        assert set(answers) == {200} and loads == []
        # the new collection's look scales measured before the switch, by the reindex, not by the queries after
        assert [inside for name, inside in measured if name == report.collection] == [True, True]
        assert store.list() == [report.collection]
        assert store.open(report.collection).count() == 8
