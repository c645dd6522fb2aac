"""What `lookalike serve` runs once its options are read: checks, the banner, then the development server or
waitress."""

from __future__ import annotations

import logging
import signal
import sys

import click
from flask import current_app
from werkzeug.serving import run_simple

from backend.cli.checks import embedded_store_free, ready_database
from backend.cli.production import run
from backend.config import Settings, current_settings
from backend.core.extensions import db
from backend.indexing.maintenance import start_in_process_sweep
from backend.serving.active import active_collection, default_model_note, stale_descriptors_note
from backend.serving.embedders import import_model_code, is_untrained, serve_inference_on_one_thread
from ml.versions import builtin_arch

log = logging.getLogger("lookalike")


def start(*, host: str | None, port: int | None, production: bool, workers: int | None, threads: int | None) -> None:
    """Serve the API in this app context (`lookalike serve`)."""
    settings = current_settings()
    ready_database(migrate_embedded=True)
    embedded_store_free(
        settings,
        what="this one did not start",
        instead="One `lookalike serve` per VAR_DIR: stop the other, or give this one its own VAR_DIR.",
    )
    host = host or settings.host
    port = port or settings.port
    token = current_app.config["ADMIN_TOKEN"]
    if current_app.config["ADMIN_TOKEN_MADE_UP"]:
        click.echo(f" * Development admin token: {token}  (set ADMIN_TOKEN to choose your own)")
    click.echo(f" * Database: {settings.database_url.split('@')[-1]}")
    click.echo(f" * Vector index: {settings.qdrant_url or 'Qdrant Edge at ' + str(settings.qdrant_path)}")
    click.echo(f" * Tasks: {'in-process' if settings.tasks_in_process else f'Celery on {settings.redis_url}'}")
    click.echo(f" * API on http://{host}:{port}/api/v1  (docs: http://{host}:{port}/docs)")
    _announce_model(settings)
    import_model_code()  # torch now, not inside the first request
    serve_inference_on_one_thread()  # its requests' forward passes: one OpenMP team (backend.serving.embedders)
    if production:
        try:
            run(settings, host=host, port=port, workers=workers, threads=threads)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return
    start_in_process_sweep(current_app._get_current_object())  # type: ignore[attr-defined]
    # A process manager stops us with SIGTERM: exit cleanly so that atexit flushes and closes the store.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # One process with threads: the embedded Qdrant store is locked to the process that opened it.
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)  # type: ignore[attr-defined]


def _announce_model(settings: Settings) -> None:
    """Name the model that embeds (ImageNet-pretrained or fine-tuned), and warn about an untrained live index or
    one whose vectors are of an older definition."""
    try:
        live = active_collection(session=db.session, settings=settings)
        note = default_model_note(session=db.session, settings=settings)
        stale = stale_descriptors_note(session=db.session, settings=settings)
    except Exception as exc:  # no tables yet: the database is not migrated
        db.session.rollback()
        click.echo(f" * Model: unknown ({type(exc).__name__}); run `lookalike db upgrade` first", err=True)
        return
    if builtin_arch(live.model_version):
        kind = "ImageNet-pretrained, built in"
    elif is_untrained(settings, live.model_version):
        kind = "untrained network"
    else:
        kind = "fine-tuned checkpoint"
    click.echo(f" * Model: {live.model_version} ({kind})")
    for line in (note, stale):
        if line:
            log.warning(line)
