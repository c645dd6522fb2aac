"""Which collection is live: one per model version and build, the database row in state `active` is the switch.

Queries and workers read the active row (its name and model version together), so a query vector and
the collection it searches always come from the same model, and a reindex switches all of them at once.
While a model A/B test runs, the collections of its other arms are live too (state `experiment`): a visitor's
arm answers from its own collection, with its own model.

Queries read the live collections through a per-process view (`live_view`), read again once LIVE_CHECK_S has
passed or at once when a switch touches the stamp file in VAR_DIR; writers read the rows themselves.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import CollectionState, Experiment, ExperimentState, IndexCollection, ModelVersion
from backend.domain.experiments import Arm, assign
from backend.index import IndexBusy, VectorIndex, store_for
from backend.serving.embedders import UNTRAINED, configured_default, is_untrained
from ml.versions import DESCRIPTORS, builtin_arch

LIVE = (CollectionState.active, CollectionState.experiment)


@dataclass(frozen=True)
class Active:
    """The collection a query or a worker uses, and its model."""

    name: str
    model_version: str
    # Every collection that answers now: the active one and those of a running experiment's arms (a process
    # keeps each of them open).
    live: tuple[str, ...] = ()
    # Whether the photos' rows record this collection's model, as they do the active one's; an experiment arm's
    # collection is its own record (a photo is in it or not).
    tracked: bool = True
    arm: str | None = None  # the experiment arm this collection answers for


def default_version(*, session: DbSession, settings: Settings) -> str:
    """The registered model marked active, else DEFAULT_MODEL (a built-in ImageNet-pretrained model)."""
    model = session.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
    return model.version if model else configured_default(settings)


def default_model_note(*, session: DbSession, settings: Settings) -> str | None:
    """What to do when the live collection was built by another built-in model than DEFAULT_MODEL, or by the
    untrained network (an install from before pretrained models). The move is a reindex, so that answers never
    mix two models; a fine-tuned model an admin activated is left alone."""
    live = active_collection(session=session, settings=settings)
    if settings.default_model in (UNTRAINED, live.model_version):
        return None
    if is_untrained(settings, live.model_version):
        built_by = "the untrained network"
    elif builtin_arch(live.model_version) is not None:
        built_by = live.model_version
    else:
        return None
    return (
        f"the live collection {live.name} was built by {built_by}, DEFAULT_MODEL is {settings.default_model}: run"
        f" `lookalike model activate {settings.default_model}` to reindex every photo with it"
        " (queries keep answering from the current collection until the switch)"
    )


def stale_descriptors_note(*, session: DbSession, settings: Settings) -> str | None:
    """What to do when the live collections hold look and kind vectors of an older definition than this
    release's (ml.versions.DESCRIPTORS): queries go on answering from them, photos added meanwhile get the new
    definition, and a reindex rebuilds every photo with one."""
    stale = session.scalars(
        select(IndexCollection.name).where(
            IndexCollection.state.in_(LIVE),
            (IndexCollection.descriptors.is_(None)) | (IndexCollection.descriptors < DESCRIPTORS),
        )
    ).all()
    if not stale:
        return None
    return (
        f"the live collection {', '.join(sorted(stale))} holds look vectors of an older definition than this"
        f" release's ({DESCRIPTORS}): run `lookalike reindex` to rebuild it (queries keep answering from it until"
        " the switch)"
    )


def new_collection_name(settings: Settings, version: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{settings.qdrant_collection}-{version}-{stamp}"


def active_collection(*, session: DbSession, settings: Settings) -> Active:
    """The active collection (and the names of every live one, in one query); the first call of a new
    installation creates it for the default model."""
    rows = session.execute(
        select(IndexCollection.name, IndexCollection.model_version, IndexCollection.state).where(
            IndexCollection.state.in_(LIVE)
        )
    ).all()
    found = [(name, version) for name, version, state in rows if state == CollectionState.active]
    live = tuple(sorted(name for name, _, _ in rows))
    if found:
        return Active(found[0][0], found[0][1], live)
    version = default_version(session=session, settings=settings)
    row = IndexCollection(
        name=new_collection_name(settings, version),
        model_version=version,
        state=CollectionState.active,
        switched_at=datetime.now(UTC),
    )
    session.add(row)
    try:
        session.commit()
    except IntegrityError:  # another process created it first
        session.rollback()
        return active_collection(session=session, settings=settings)
    note_switch(settings)
    return Active(row.name, row.model_version, tuple(sorted({row.name, *live})))


@dataclass(frozen=True)
class LiveArm(Arm):
    collection: str  # the collection that answers its visitors


@dataclass(frozen=True)
class RunningExperiment:
    id: int
    arms: list[LiveArm]  # in the order visitors are dealt
    started_at: str  # ISO 8601


def running_experiment(session: DbSession) -> RunningExperiment | None:
    """The running model A/B test, its arms each with the collection that answers for it; None when none runs."""
    experiment = session.scalar(select(Experiment).where(Experiment.state == ExperimentState.running))
    if experiment is None:
        return None
    arms = [LiveArm(a["name"], a["model_version"], int(a["weight"]), a["collection"]) for a in experiment.arms]
    return RunningExperiment(experiment.id, arms, experiment.started_at.isoformat())


@dataclass(frozen=True)
class LiveView:
    """The live collections as a process last read them: the active one and the running experiment."""

    active: Active
    experiment: RunningExperiment | None
    stamp: int  # the stamp file's mtime when read (0: none yet)
    read_at: float  # time.monotonic()


LIVE_STAMP = "live-collections.stamp"
STAMP_CHECK_S = 0.01  # the stamp file looked at at most this often (a stat a request was 3% of a loaded server)
_views: dict[tuple[str, str, str], LiveView] = {}
_views_lock = threading.Lock()
_stamps: dict[str, tuple[float, int]] = {}  # by stamp path: (when looked at, its mtime then)


def _stamp_path(settings: Settings) -> Path:
    return Path(settings.var_dir) / LIVE_STAMP


def _stamp(settings: Settings, *, now: bool = False) -> int:
    """The stamp file's mtime (0: none yet), looked at again once STAMP_CHECK_S has passed or when `now`."""
    path = str(_stamp_path(settings))
    seen = _stamps.get(path)
    tick = time.monotonic()
    if not now and seen is not None and tick - seen[0] < STAMP_CHECK_S:
        return seen[1]
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = 0
    _stamps[path] = (tick, stamp)
    return stamp


def note_switch(settings: Settings) -> None:
    """Tell the serving processes on this host that the live collections changed (after the commit): each
    reads them again at its next query rather than after LIVE_CHECK_S."""
    path = _stamp_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a"):
            pass
        now = time.time_ns()
        os.utime(path, ns=(now, max(now, _stamp(settings, now=True) + 1)))
    except OSError:  # a read-only VAR_DIR: the others see the switch within LIVE_CHECK_S
        pass
    with _views_lock:
        _views.clear()
        _stamps.pop(str(path), None)


def forget_live() -> None:
    """Drop this process's views (tests between databases)."""
    with _views_lock:
        _views.clear()
        _stamps.clear()


def live_view(*, session: DbSession, settings: Settings, fresh: bool = False) -> LiveView:
    """The live collections for a query: this process's last read while it is younger than LIVE_CHECK_S and no
    switch touched the stamp since, else read again (two queries); `fresh` reads them again whatever."""
    key = (settings.database_url, str(settings.var_dir), settings.qdrant_collection)
    stamp = _stamp(settings)
    known = _views.get(key)
    if (
        not fresh
        and known is not None
        and known.stamp == stamp
        and time.monotonic() - known.read_at < settings.live_check_s
    ):
        return known
    for attempt in range(2):  # the stamp moved during the read (a switch, or this read creating the first one)
        read_at = time.monotonic()
        view = LiveView(
            active_collection(session=session, settings=settings), running_experiment(session), stamp, read_at
        )
        now = _stamp(settings, now=True)
        if now == stamp or attempt == 1:
            break
        stamp = now
    with _views_lock:
        _views[key] = view
    return view


def answering(*, session: DbSession, settings: Settings, visitor: str | None, fresh: bool = False) -> Active:
    """The collection that answers this visitor: its arm's while an experiment runs, else the active one (and
    for a request without a visitor id, which no arm can be dealt). From this process's view of the live
    collections (`live_view`); `fresh` reads them again."""
    view = live_view(session=session, settings=settings, fresh=fresh)
    active, running = view.active, view.experiment
    if visitor is None or running is None:
        return active
    arm = assign(str(running.id), running.arms, visitor)
    if arm.collection == active.name:
        return replace(active, arm=arm.name)
    if arm.collection not in active.live:  # the experiment stopped between the two reads
        return active
    return Active(arm.collection, arm.model_version, active.live, tracked=False, arm=arm.name)


def index_of(settings: Settings, active: Active) -> VectorIndex:
    """The index of a collection read as active, opened once per process; replaced Edge shards are let go.

    Callers that read `active` earlier pass it here rather than read it again: a switch in between
    would pair one model's vectors with another model's collection.
    """
    store = store_for(settings)
    index = store.open(active.name)
    store.release_others(keep=active.name, also=active.live)
    return index


def active_index(*, session: DbSession, settings: Settings) -> tuple[Active, VectorIndex]:
    """The active collection and its index."""
    active = active_collection(session=session, settings=settings)
    return active, index_of(settings, active)


def store_held_elsewhere(*, session: DbSession, settings: Settings) -> bool:
    """Whether another process holds the embedded store (it is locked to one process); never on the server."""
    try:
        active_index(session=session, settings=settings)
    except IndexBusy:
        return True
    return False


def building_indexes(*, session: DbSession, settings: Settings) -> list[VectorIndex]:
    """On the server, the collections a reindex is building: deletes and payload changes go there too, so a
    change that lands after the reindex's own pass over the database still reaches the next collection.

    An Edge shard being built is held by the reindex's process; there the full sweep repairs such drift.
    """
    store = store_for(settings)
    if not store.builds_visible:
        return []
    names = session.scalars(select(IndexCollection.name).where(IndexCollection.state == CollectionState.building))
    return [store.open(name) for name in names]


def experiment_indexes(*, session: DbSession, settings: Settings) -> list[tuple[str, str, VectorIndex]]:
    """The collections of a running experiment's arms other than the active one: (name, model version, index).
    New photos, deletes and payload changes reach them too, so that every arm answers from the whole catalog."""
    rows = session.execute(
        select(IndexCollection.name, IndexCollection.model_version)
        .where(IndexCollection.state == CollectionState.experiment)
        .order_by(IndexCollection.name)
    ).all()
    store = store_for(settings)
    return [(name, version, store.open(name)) for name, version in rows]
