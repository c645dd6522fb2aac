"""Model A/B tests: start one (its arms' collections built by the reindex path and kept live beside the active
one), see it, and stop it keeping one arm, through the normal switch.

Visitors are dealt an arm by a stable hash of their id (`backend.domain.experiments`); the similar-items
answer of a visitor comes from its arm's collection, with its arm's model, and says which arm answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import (
    CollectionState,
    Experiment,
    ExperimentState,
    ImageStatus,
    IndexCollection,
    ProductImage,
)
from backend.domain.experiments import Arm, check_arms
from backend.errors import InvalidInput, LookalikeError
from backend.index import VectorIndex, store_for
from backend.indexing.mirror import embed_into
from backend.indexing.reindex import (
    Built,
    build_collection,
    discard_build,
    hand_over,
    lock_live,
    point_alias,
    switch_to,
)
from backend.services.models import (
    ExperimentRunning,
    RegistryError,
    check_activatable,
    refuse_a_second_reindex,
)
from backend.serving.active import RunningExperiment, active_collection, note_switch, running_experiment

log = logging.getLogger(__name__)


class NoExperiment(LookalikeError):
    code = "no_experiment"
    status = 409


@dataclass
class StartReport:
    experiment: int
    arms: list[dict[str, Any]]
    built: list[str] = field(default_factory=list)  # the collections built for arms on another model
    caught_up: int = 0  # photos indexed during the builds, embedded into them afterwards


@dataclass
class StopReport:
    experiment: int
    kept: str
    model_version: str
    collection: str
    switched: bool  # the kept arm was not the active collection's: the normal switch made it active
    retired: list[str] = field(default_factory=list)  # dropped by the sweep after the grace
    caught_up: int = 0  # photos the kept collection lacked: enqueued for its model


def check_versions(session: DbSession, arms: Sequence[Arm], active_version: str) -> None:
    """InvalidInput naming `arm` for an arm whose model cannot embed here (unknown, weights or checkpoint
    missing)."""
    for version in dict.fromkeys(arm.model_version for arm in arms):
        if version == active_version:
            continue
        try:
            check_activatable(session=session, version=version)
        except RegistryError as exc:
            raise InvalidInput("arm", str(exc)) from exc


def start_experiment(
    *,
    session: DbSession,
    settings: Settings,
    arms: Sequence[Arm],
    progress: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
    prepare: Callable[[str, VectorIndex], None] | None = None,
) -> StartReport:
    """Build a collection for each arm model other than the active one (the reindex's build), then in one
    transaction make them live and the experiment running. Queries go on from the active collection meanwhile;
    photos indexed during the builds are embedded into them before and after they go live. `prepare`: as for
    `reindex`."""
    arms = check_arms(arms)
    refuse_a_second_reindex(session=session)
    active = active_collection(session=session, settings=settings)
    check_versions(session, arms, active.model_version)
    built: dict[str, Built] = {}
    caught_up = 0
    try:
        for version in dict.fromkeys(arm.model_version for arm in arms):
            if version != active.model_version:
                built[version] = build_collection(
                    session=session, settings=settings, version=version, progress=progress, on_total=on_total
                )
                caught_up += _catch_up(session, settings, built[version])
                hand_over(settings, built[version], prepare)
        experiment = _go_live(session, active.name, arms, built)
    except BaseException:
        for each in built.values():
            discard_build(session, settings, each.name)
        raise
    note_switch(settings)
    report = StartReport(experiment.id, list(experiment.arms), [b.name for b in built.values()], caught_up)
    # Photos indexed in the last moment before the commit: their workers read no experiment yet. Caught up here
    # where this process may open the collections now (it serves them, or the store is a server); a command
    # beside an embedded server must not hold a shard that server now answers from: the full sweep embeds them.
    store = store_for(settings)
    if prepare is not None or not store.holds_collections:
        for each in built.values():
            report.caught_up += _catch_up(session, settings, each)
            if prepare is None:
                store.close_collection(each.name)
    log.info("experiment %d started: %s", report.experiment, report.arms)
    return report


def _catch_up(session: DbSession, settings: Settings, built: Built) -> int:
    """Embed into a built collection the photos indexed into the active one since its build read them."""
    indexed = set(session.scalars(select(ProductImage.id).where(ProductImage.status == ImageStatus.indexed)))
    session.rollback()
    behind = sorted(indexed - built.done)
    written = embed_into(session, settings, built.model_version, store_for(settings).open(built.name), behind)
    built.done.update(behind)
    return written


def _go_live(session: DbSession, active: str, arms: Sequence[Arm], built: dict[str, Built]) -> Experiment:
    """One transaction: the built collections live (state `experiment`), the experiment running."""
    live = lock_live(session)
    if not any(row.name == active and row.state == CollectionState.active for row in live):
        session.rollback()
        raise ExperimentRunning("the active collection changed during the build (a reindex switched): start again")
    now = datetime.now(UTC)
    for each in built.values():
        session.execute(
            update(IndexCollection)
            .where(IndexCollection.name == each.name)
            .values(state=CollectionState.experiment, switched_at=now, builder=None)
        )
    experiment = Experiment(
        state=ExperimentState.running,
        arms=[
            {
                "name": arm.name,
                "model_version": arm.model_version,
                "weight": arm.weight,
                "collection": built[arm.model_version].name if arm.model_version in built else active,
            }
            for arm in arms
        ],
        started_at=now,
    )
    session.add(experiment)
    try:
        session.commit()
    except IntegrityError as exc:  # another experiment started meanwhile
        session.rollback()
        raise ExperimentRunning("another experiment started meanwhile: stop it first") from exc
    return experiment


def current_experiment(*, session: DbSession) -> RunningExperiment | None:
    """The running experiment, or None."""
    return running_experiment(session)


def stop_experiment(
    *, session: DbSession, settings: Settings, keep: str, enqueue: Callable[[list[int]], None]
) -> StopReport:
    """End the running experiment keeping arm `keep`: its collection becomes (or stays) the active one through
    the normal switch, the other arms' collections are retired, for the sweep to drop after the grace."""
    running = running_experiment(session)
    if running is None:
        raise NoExperiment("no experiment is running")
    experiment_id = running.id
    by_name = {arm.name: arm for arm in running.arms}
    if keep not in by_name:
        raise InvalidInput("keep", f"no arm {keep!r} in the running experiment (its arms: {', '.join(by_name)})")
    arm = by_name[keep]
    collection = arm.collection
    active = active_collection(session=session, settings=settings)
    switched = collection != active.name
    done: set[int] = set()
    if switched:  # the photos it holds, read before the lock: the switch marks them indexed by its model
        store = store_for(settings)
        opened_here = not store.is_open(collection)
        held = store.open(collection).ids()
        if opened_here and store.holds_collections:
            store.close_collection(collection)  # an embedded server beside this command opens it next
        done = held & set(session.scalars(select(ProductImage.id).where(ProductImage.status != ImageStatus.failed)))
    live = lock_live(session)
    experiment = session.get(Experiment, experiment_id, with_for_update=True, populate_existing=True)
    if experiment is None or experiment.state != ExperimentState.running:
        session.rollback()
        raise NoExperiment("the experiment was stopped meanwhile")
    now = datetime.now(UTC)
    experiment.state, experiment.stopped_at, experiment.kept = ExperimentState.stopped, now, keep
    retired = [row.name for row in live if row.state == CollectionState.experiment and row.name != collection]
    session.execute(
        update(IndexCollection)
        .where(IndexCollection.name.in_(retired))
        .values(state=CollectionState.retired, switched_at=now)
    )
    report = StopReport(experiment_id, keep, arm.model_version, collection, switched, retired)
    if not switched:
        session.commit()
    else:
        report.retired.append(active.name)  # retired by the switch
        report.caught_up = switch_to(session, collection, arm.model_version, done, {}, enqueue)
    note_switch(settings)
    if switched:
        point_alias(settings, collection)
    log.info("experiment %d stopped, kept %s (%s)", experiment_id, keep, collection)
    return report
