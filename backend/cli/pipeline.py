"""CLI for the indexing pipeline: Celery's programs with the project's app, sweep, reindex, stats."""

from __future__ import annotations

import json
import os
import sys

import click
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeout
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.checks import ready_database
from backend.cli.progress import progress_bar
from backend.config import Environment, Settings, current_settings
from backend.core.extensions import db
from backend.core.metrics import start_multiprocess_run
from backend.indexing.reindex import reindex
from backend.indexing.sweep import run_sweep
from backend.services.models import ReindexRunning, refuse_a_second_reindex
from backend.services.status import collect_stats
from backend.serving.embedders import UnknownModel, import_model_code
from backend.worker.enqueue import enqueue_embedding, sweep


def _celery() -> Celery:
    celery: Celery = current_app.extensions["celery"]
    return celery


def _need_broker(settings: Settings, what: str) -> None:
    if settings.tasks_in_process:
        raise click.UsageError(f"REDIS_URL is not set: tasks run inside the API process, there is no {what} to start")


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None, help="Pool processes.")
@click.option("-Q", "--queues", default="embed,index", show_default=True, help="Queues to consume.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def worker(concurrency: int | None, queues: str, loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker (prefork pool) that embeds photos and keeps the index in step."""
    settings = current_settings()
    _need_broker(settings, "worker")
    concurrency = concurrency or settings.worker_concurrency
    if settings.embedded_index:
        # The Qdrant Edge shard is locked to one process: one pool process owns it.
        if concurrency not in (None, 1):
            raise click.UsageError("the embedded Qdrant Edge store allows one worker process: set QDRANT_URL for more")
        concurrency = 1
    ready_database()
    import_model_code()  # before the pool forks: every pool process starts with torch imported
    argv = ["worker", f"--loglevel={loglevel}", "-Q", queues, "--pool=prefork", "-n", f"lookalike-{os.getpid()}@%h"]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    start_multiprocess_run()
    _celery().worker_main([*argv, *celery_args])


@click.command("beat", context_settings={"ignore_unknown_options": True})
@click.option("--loglevel", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def beat(loglevel: str, celery_args: tuple[str, ...]) -> None:
    """Start Celery beat: the quick sweep every SWEEP_INTERVAL_S, the full one every SWEEP_FULL_INTERVAL_S."""
    settings = current_settings()
    _need_broker(settings, "scheduler")
    _celery().start(["beat", f"--loglevel={loglevel}", *celery_args])


@click.command("flower", context_settings={"ignore_unknown_options": True})
@click.option("--address", default=None, help="Address to bind (default: FLOWER_ADDRESS, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: FLOWER_PORT, 5555).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@with_appcontext
def flower(address: str | None, port: int | None, celery_args: tuple[str, ...]) -> None:
    """Start Flower, the Celery monitor, behind basic auth (FLOWER_BASIC_AUTH=user:password)."""
    settings = current_settings()
    _need_broker(settings, "Flower")
    auth = settings.flower_basic_auth
    if auth is None:
        if settings.environment is Environment.production:
            raise click.UsageError("set FLOWER_BASIC_AUTH=user:password to start Flower in production")
        auth = f"admin:{current_app.config['ADMIN_TOKEN']}"
        click.echo(" * Flower user: admin, password: the admin token (set FLOWER_BASIC_AUTH to choose)", err=True)
    # Flower serves /metrics without asking for its basic auth: put it behind the same login as the rest.
    from flower.views.monitor import Metrics
    from tornado.web import authenticated

    Metrics.get = authenticated(Metrics.get)
    address = address or settings.flower_address
    port = port or settings.flower_port
    click.echo(f" * Flower on http://{address}:{port}", err=True)
    _celery().start(["flower", f"--address={address}", f"--port={port}", f"--basic-auth={auth}", *celery_args])


@click.command("stats")
@with_appcontext
def stats_command() -> None:
    """Print JSON: products, photos by status, the index and the model, as /api/v1/stats shows them."""
    ready_database()
    stats = collect_stats(session=db.session, settings=current_settings(), index_errors=True)
    click.echo(json.dumps(stats, indent=2))


@click.command("sweep")
@click.option("--quick", is_flag=True, help="Only what the minutely sweep does: no comparison of every point.")
@click.option("--here", is_flag=True, help="Run in this process even when workers run (they may hold the store).")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait for a worker's answer.")
@with_appcontext
def sweep_command(quick: bool, here: bool, timeout: int) -> None:
    """Re-enqueue lost and transiently failed photos; repair drift between the database and the index.

    Drift: points of deleted photos, photos without a point, points of another model, stale payloads."""
    ready_database()
    settings = current_settings()
    if settings.tasks_in_process or here:
        report = run_sweep(session=db.session, settings=settings, enqueue=enqueue_embedding, full=not quick)
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    # A worker runs it: on the embedded store, the worker is the process that holds the index.
    result = sweep.apply_async(kwargs={"full": not quick})
    try:
        click.echo(json.dumps(result.get(timeout=timeout), indent=2))
    except CeleryTimeout:
        click.echo(f"no worker answered within {timeout} s: is `lookalike worker` running?", err=True)
        sys.exit(1)


@click.command("reindex")
@click.option("--model", "version", default=None, help="Model version (default: the active one).")
@click.option(
    "--drop-wait", default=120.0, show_default=True, help="Seconds to wait for the old collection to be let go."
)
@with_appcontext
def reindex_command(version: str | None, drop_wait: float) -> None:
    """Embed every photo into a new collection, switch to it atomically, drop the old one."""
    run_reindex(version, drop_wait)


def run_reindex(version: str | None, drop_wait: float = 120.0) -> None:
    ready_database()
    settings = current_settings()
    try:
        refuse_a_second_reindex(session=db.session)
    except ReindexRunning as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(1)
    with progress_bar("reindex") as (update, set_total):
        try:
            report = reindex(
                session=db.session,
                settings=settings,
                version=version,
                enqueue=enqueue_embedding,
                progress=update,
                on_total=set_total,
                drop_wait_s=drop_wait,
            )
        except UnknownModel as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
    click.echo(json.dumps(vars(report), indent=2))
