"""Model A/B tests on the real stack (Edge in process, SQLite and PostgreSQL): each visitor's arm answers from its
own collection with its own model, new photos and deletes reach every arm, and stopping keeps the winner through
the normal switch while the sweep drops the loser after the grace."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import select

from backend.core.extensions import db
from backend.db.models import CollectionState, Experiment, ImageStatus, IndexCollection, ProductImage
from backend.domain.experiments import Arm, assign
from backend.errors import InvalidInput
from backend.index import IndexPoint, store_for
from backend.indexing import sweep as sweep_module
from backend.indexing.sweep import run_sweep
from backend.services.experiments import NoExperiment, start_experiment, stop_experiment
from backend.services.models import ExperimentRunning, refuse_a_second_reindex
from backend.serving.active import active_collection
from backend.worker.tasks import enqueue_embedding
from tests.utils import images
from tests.utils.api import AUTH, upload
from tests.utils.pages import log_in, post_form

OTHER = "efficientnet_lite0-imagenet"  # the challenger; the tests' active model is the untrained network


def visitor_in(experiment: int, arms: list[Arm], wanted: str) -> str:
    """A visitor id (as the widget makes them) that the stable hash deals to arm `wanted`."""
    for n in range(1000):
        visitor = f"visitor-{n:06d}"
        if assign(str(experiment), arms, visitor).name == wanted:
            return visitor
    raise AssertionError(f"no visitor in arm {wanted}")


def catalog(client: Any, n: int = 4) -> list[int]:
    return [upload(client, f"E{k}", images.png(k), images.png(k + 40)).json["id"] for k in range(n)]


def start(app: Any, *arms: Arm) -> Any:
    with app.app_context():
        return start_experiment(session=db.session, settings=app.config["SETTINGS"], arms=list(arms))


def arms_of(app: Any) -> tuple[str, list[Arm]]:
    with app.app_context():
        untrained = active_collection(session=db.session, settings=app.config["SETTINGS"]).model_version
    return untrained, [Arm("A", untrained, 50), Arm("B", OTHER, 50)]


def test_each_visitor_is_answered_by_its_arms_own_collection_and_model(app: Any, client: Any) -> None:
    ids = catalog(client)
    untrained, arms = arms_of(app)
    report = start(app, *arms)
    assert len(report.built) == 1 and report.caught_up == 0
    settings = app.config["SETTINGS"]
    with app.app_context():
        active = active_collection(session=db.session, settings=settings)
        assert set(active.live) == {active.name, report.built[0]}
        challenger = store_for(settings).open(report.built[0])
        assert challenger.ids() == active_index_ids(app)  # every photo, embedded by the challenger's model
    stats = client.get("/api/v1/stats").json["experiment"]
    assert stats["id"] == report.experiment and [a["name"] for a in stats["arms"]] == ["A", "B"]
    assert stats["arms"][1]["collection"] == report.built[0]
    a, b = visitor_in(report.experiment, arms, "A"), visitor_in(report.experiment, arms, "B")
    answers = {}
    for arm, visitor in (("A", a), ("B", b)):
        for _ in range(2):  # the same arm on every request
            answer = client.get(f"/api/v1/products/{ids[0]}/similar?limit=3&visitor={visitor}")
            assert answer.status_code == 200, answer.json
            assert answer.json["arm"] == arm and answer.headers["X-Lookalike-Arm"] == arm
            answers[arm] = answer.json
    assert answers["A"]["model_version"] == untrained and answers["B"]["model_version"] == OTHER
    assert answers["B"]["items"] and answers["A"]["items"]
    # Different models, different spaces: the distances of the two answers differ.
    assert [i["distance"] for i in answers["A"]["items"]] != [i["distance"] for i in answers["B"]["items"]]
    plain = client.get(f"/api/v1/products/{ids[0]}/similar?limit=3")
    assert "arm" not in plain.json and "X-Lookalike-Arm" not in plain.headers
    assert plain.json["model_version"] == untrained
    photo = client.get(f"/api/v1/images/{answers['B']['items'][0]['image_id']}/similar?visitor={b}")
    assert photo.status_code == 200 and photo.json["arm"] == "B" and photo.json["model_version"] == OTHER

    # A new product reaches both arms; a deleted one leaves both.
    new = upload(client, "NEW", images.png(90)).json
    assert client.delete(f"/api/v1/products/{ids[1]}", headers=AUTH).status_code == 204
    with app.app_context():
        held = challenger.ids()
    assert new["images"][0]["id"] in held
    found = client.get(f"/api/v1/products/{ids[0]}/similar?limit=10&visitor={b}").json
    assert new["id"] in [i["product"]["id"] for i in found["items"]]
    assert ids[1] not in [i["product"]["id"] for i in found["items"]]
    assert held == active_index_ids(app)


def active_index_ids(app: Any) -> set[int]:
    with app.app_context():
        active = active_collection(session=db.session, settings=app.config["SETTINGS"])
        return store_for(app.config["SETTINGS"]).open(active.name).ids()


def test_stopping_keeps_the_winner_through_the_switch_and_the_sweep_drops_the_loser_after_the_grace(
    app: Any, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = catalog(client, 3)
    _, arms = arms_of(app)
    report = start(app, *arms)
    settings = app.config["SETTINGS"]
    with app.app_context():
        loser = active_collection(session=db.session, settings=settings).name
        stopped = stop_experiment(session=db.session, settings=settings, keep="B", enqueue=enqueue_embedding)
        assert stopped.switched and stopped.collection == report.built[0] and stopped.retired == [loser]
        active = active_collection(session=db.session, settings=settings)
        assert (active.name, active.model_version, active.live) == (report.built[0], OTHER, (report.built[0],))
        photos = db.session.execute(select(ProductImage.status, ProductImage.model_version)).all()
        assert set(photos) == {(ImageStatus.indexed, OTHER)}  # the switch marked them by the kept model
        assert db.session.scalar(select(Experiment.kept)) == "B"
    answer = client.get(f"/api/v1/products/{ids[0]}/similar?visitor=visitor-000001")
    assert answer.status_code == 200 and answer.json["model_version"] == OTHER and "arm" not in answer.json
    assert client.get("/api/v1/stats").json["experiment"] is None
    with app.app_context():
        first = run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding)
        assert loser not in first.dropped_collections and loser in store_for(settings).list()  # within the grace
        monkeypatch.setattr(sweep_module, "RELEASE_GRACE_S", 0.0)
        later = run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding)
        assert later.dropped_collections == [loser] and loser not in store_for(settings).list()
        assert db.session.get(IndexCollection, loser) is None


def test_keeping_the_active_arm_retires_the_challenger(app: Any, client: Any) -> None:
    catalog(client, 2)
    _, arms = arms_of(app)
    report = start(app, *arms)
    settings = app.config["SETTINGS"]
    with app.app_context():
        before = active_collection(session=db.session, settings=settings).name
        stopped = stop_experiment(session=db.session, settings=settings, keep="A", enqueue=enqueue_embedding)
        assert not stopped.switched and stopped.retired == report.built
        assert db.session.get(IndexCollection, report.built[0]).state == CollectionState.retired
        assert active_collection(session=db.session, settings=settings).name == before


def test_refusals_say_why_and_leave_everything_as_it_was(app: Any, client: Any) -> None:
    ids = catalog(client, 2)
    _, arms = arms_of(app)
    settings = app.config["SETTINGS"]
    with app.app_context(), pytest.raises(InvalidInput, match="unknown model version 'nope'"):
        start_experiment(session=db.session, settings=settings, arms=[arms[0], Arm("B", "nope", 1)])
    with app.app_context():
        assert db.session.scalars(select(IndexCollection.state)).all() == [CollectionState.active]
        with pytest.raises(NoExperiment):
            stop_experiment(session=db.session, settings=settings, keep="A", enqueue=enqueue_embedding)
    start(app, *arms)
    with app.app_context():
        with pytest.raises(ExperimentRunning, match="stop it first"):
            refuse_a_second_reindex(session=db.session)  # no reindex while an experiment runs
        with pytest.raises(ExperimentRunning):
            start_experiment(session=db.session, settings=settings, arms=arms)
        with pytest.raises(InvalidInput, match="no arm 'C'"):
            stop_experiment(session=db.session, settings=settings, keep="C", enqueue=enqueue_embedding)
    bad = client.get(f"/api/v1/products/{ids[0]}/similar?visitor=a%20b")
    assert bad.status_code == 400 and "visitor" in str(bad.json)


def test_the_models_page_starts_and_stops_an_experiment(app: Any, client: Any) -> None:
    ids = catalog(client, 2)
    untrained, _ = arms_of(app)
    log_in(client)
    refused = post_form(
        client, "/admin/models/experiment/start", {"arm": [f"A={untrained}"]}, token_from="/admin/models"
    )
    assert "an experiment has 2 to 8 arms" in client.get(refused.headers["Location"]).get_data(as_text=True)
    form = {"arm": [f"A={untrained}:50", f"B={OTHER}:50", ""]}
    started = post_form(client, "/admin/models/experiment/start", form, token_from="/admin/models")
    assert started.status_code == 302
    deadline = time.monotonic() + 120
    while 'id="experiment"' not in (page := client.get("/admin/models").get_data(as_text=True)):
        assert time.monotonic() < deadline, "the experiment's build did not finish in 120 s"
        time.sleep(0.2)
    assert OTHER in page and 'id="stop-experiment"' in page
    answer = client.get(f"/api/v1/products/{ids[0]}/similar?visitor=visitor-000002")
    assert answer.json["arm"] in {"A", "B"}
    stopped = post_form(client, "/admin/models/experiment/stop", {"keep": "B"}, token_from="/admin/models")
    assert "arm B kept" in client.get(stopped.headers["Location"]).get_data(as_text=True)
    assert re.search(rf'id="active-model">{OTHER}<', client.get("/admin/models").get_data(as_text=True))


def test_the_full_sweep_repairs_an_arms_collection(app: Any, client: Any) -> None:
    """A mirror that failed (a point missing from the challenger's collection) and a point of a photo that is gone:
    the full sweep embeds the one and deletes the other; the quick sweep leaves them."""
    catalog(client, 3)
    _, arms = arms_of(app)
    report = start(app, *arms)
    settings = app.config["SETTINGS"]
    with app.app_context():
        challenger = store_for(settings).open(report.built[0])
        everything = challenger.ids()
        lost = min(everything)
        challenger.delete([lost])
        stray = challenger.vectors([max(everything)])[max(everything)]
        challenger.upsert([IndexPoint(9999, stray, {"product_id": 9999})])
        quick = run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding)
        assert (quick.arm_missing, quick.arm_orphans) == (0, 0)
        full = run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding, full=True)
        assert (full.arm_missing, full.arm_orphans) == (1, 1)
        assert challenger.ids() == everything
        assert run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding, full=True).arm_missing == 0
