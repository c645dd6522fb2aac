"""The model registry: checkpoints known to the service, the one that embeds (active), and the rule that one
reindex runs at a time (for the pages, `lookalike model activate` and `lookalike reindex` alike)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from backend.core.extensions import DbSession
from backend.db.models import CollectionState, Experiment, ExperimentState, IndexCollection, ModelVersion
from backend.errors import LookalikeError
from ml.versions import builtin_arch, builtin_names

# A build that has not moved for this long is taken for dead (its process gone): it no longer blocks another.
STALLED_AFTER = timedelta(minutes=10)


class RegistryError(ValueError):
    pass


def register_model(*, session: DbSession, path: Path) -> ModelVersion:
    """Record a checkpoint under its content-hash version; registering the same weights twice is refused."""
    # Here, not above: reading a checkpoint needs torch, which the web app does not import.
    from ml.checkpoint import load_checkpoint

    path = Path(path).resolve()
    try:
        checkpoint = load_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise RegistryError(str(exc)) from exc
    except Exception as exc:  # a file torch cannot read at all
        raise RegistryError(f"{path} is not a readable checkpoint: {exc}") from exc
    version = checkpoint["model_version"]
    existing = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if existing is not None:
        raise RegistryError(f"model {version} is already registered (from {existing.path})")
    model = ModelVersion(
        version=version,
        path=str(path),
        class_names=list(checkpoint["class_names"]),
        metrics=dict(checkpoint.get("metrics", {})),
        active=False,
    )
    session.add(model)
    session.commit()
    return model


def list_models(*, session: DbSession) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).order_by(ModelVersion.created_at, ModelVersion.id)))


def check_activatable(*, session: DbSession, version: str) -> ModelVersion | None:
    """The registered model `version` if its checkpoint is there, None for a built-in model whose weights load
    here. Activation itself is a reindex."""
    arch = builtin_arch(version)
    if arch is not None:
        # Here, not above: the backbones' module imports torch and timm.
        from ml.backbones import get_arch, imagenet_available

        if not imagenet_available(arch):
            raise RegistryError(f"the ImageNet weights of {version} are not here: {get_arch(arch).weights_origin}")
        return None
    model = session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if model is None:
        known = ", ".join([*builtin_names(), *(m.version for m in list_models(session=session))])
        raise RegistryError(f"unknown model version {version!r} (known: {known})")
    if not Path(model.path).is_file():
        raise RegistryError(f"the checkpoint of {version} is missing: {model.path}")
    return model


@dataclass(frozen=True)
class Build:
    """A collection a reindex is building, and how far it is."""

    name: str
    model_version: str
    total: int | None
    done: int
    stalled: bool  # no progress for STALLED_AFTER


class ReindexRunning(LookalikeError):
    code = "reindex_running"
    status = 409


def builds(*, session: DbSession) -> list[Build]:
    rows = session.scalars(
        select(IndexCollection)
        .where(IndexCollection.state == CollectionState.building)
        .order_by(IndexCollection.created_at)
    )
    now = datetime.now(UTC)
    return [
        Build(
            row.name,
            row.model_version,
            row.photos_total,
            row.photos_done or 0,
            now - (row.progress_at or row.created_at) > STALLED_AFTER,
        )
        for row in rows
    ]


class ExperimentRunning(ReindexRunning):
    """No reindex, and no second experiment, while a model A/B test runs: its arms' collections must all stay
    live until it stops."""

    code = "experiment_running"


def refuse_a_second_reindex(*, session: DbSession) -> None:
    """ReindexRunning while another reindex is building and moving (a stalled one does not count), and
    ExperimentRunning while a model A/B test runs."""
    experiment = session.scalar(select(Experiment).where(Experiment.state == ExperimentState.running))
    if experiment is not None:
        arms = ", ".join(f"{arm['name']}={arm['model_version']}" for arm in experiment.arms)
        raise ExperimentRunning(
            f"an experiment is running ({arms}): stop it first (`lookalike experiment stop --keep ARM`, or the"
            " models page)"
        )
    running = [build for build in builds(session=session) if not build.stalled]
    if running:
        build = running[0]
        raise ReindexRunning(
            f"a reindex is running already (to {build.model_version}: {build.done} of {build.total or '?'} photos);"
            " wait for it to finish"
        )
