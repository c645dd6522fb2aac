"""`lookalike experiment`: start a model A/B test, see it, stop it keeping the winner."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import NoReturn

import click
from flask.cli import with_appcontext

from backend.cli.checks import ready_database
from backend.cli.progress import progress_bar
from backend.config import current_settings
from backend.core.extensions import db
from backend.domain.experiments import parse_arm
from backend.errors import InvalidInput, LookalikeError
from backend.index import IndexBusy
from backend.services.experiments import current_experiment, start_experiment, stop_experiment
from backend.serving.embedders import UnknownModel
from backend.worker.enqueue import enqueue_embedding


@click.group("experiment")
def experiment_group() -> None:
    """Model A/B tests: start one (its arms' collections live side by side), show it, stop it keeping one arm."""


def _refused(exc: Exception) -> NoReturn:
    """Exit 2 for a bad argument, 1 for a refusal of the moment (a reindex or an experiment running)."""
    message = exc.message if isinstance(exc, LookalikeError) else str(exc)
    click.echo(f"error: {message}", err=True)
    sys.exit(2 if isinstance(exc, (InvalidInput, UnknownModel)) else 1)


def _busy(exc: IndexBusy, verb: str) -> NoReturn:
    click.echo(f"error: {exc} (on the embedded store, {verb} it from the models page of the running server)", err=True)
    sys.exit(1)


@experiment_group.command("start")
@click.option(
    "--arm",
    "arms",
    multiple=True,
    required=True,
    help="NAME=VERSION[:WEIGHT], twice or more: A=efficientnet_lite0-imagenet:50 (weight default 1).",
)
@with_appcontext
def start_command(arms: tuple[str, ...]) -> None:
    """Build a collection for each arm's model (not the active one: it answers as it is), then keep them all
    live; visitors (`visitor=` on the similar-items calls, the widget's id) are dealt to the arms by weight."""
    ready_database()
    try:
        parsed = [parse_arm(arm) for arm in arms]
        with progress_bar("experiment build") as (update, set_total):
            report = start_experiment(
                session=db.session, settings=current_settings(), arms=parsed, progress=update, on_total=set_total
            )
    except (LookalikeError, UnknownModel) as exc:
        _refused(exc)
    except IndexBusy as exc:
        _busy(exc, "start")
    click.echo(json.dumps(vars(report), indent=2))


@experiment_group.command("show")
@with_appcontext
def show_command() -> None:
    """The running experiment (id, arms with their collections, start) as JSON; `null` when none runs."""
    ready_database()
    running = current_experiment(session=db.session)
    click.echo(json.dumps(asdict(running) if running else None, indent=2))


@experiment_group.command("stop")
@click.option("--keep", required=True, help="The arm to keep: its model becomes (or stays) the active one.")
@with_appcontext
def stop_command(keep: str) -> None:
    """End the running experiment: the kept arm's collection goes live through the normal switch, the others
    are dropped by the sweep after the grace."""
    ready_database()
    try:
        report = stop_experiment(session=db.session, settings=current_settings(), keep=keep, enqueue=enqueue_embedding)
    except LookalikeError as exc:
        _refused(exc)
    except IndexBusy as exc:
        _busy(exc, "stop")
    click.echo(json.dumps(vars(report), indent=2))
