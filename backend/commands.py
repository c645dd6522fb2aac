"""CLI commands, registered on the app's CLI group by the factory (`lookalike <command>`)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from tqdm import tqdm
from werkzeug.serving import run_simple

from backend.config import Settings

log = logging.getLogger("lookalike")


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: PORT, 8000).")
@click.option("--production", is_flag=True, help="Serve with gunicorn (gthread workers) instead of the dev server.")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="gunicorn processes (embedded: 1).")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="Threads per gunicorn process.")
@with_appcontext
def serve(host: str | None, port: int | None, production: bool, workers: int | None, threads: int | None) -> None:
    """Serve the API: one process with threads on the embedded store; `--production` runs gunicorn."""
    settings = current_app.config["SETTINGS"]
    host = host or settings.host
    port = port or settings.port
    token = current_app.config["ADMIN_TOKEN"]
    if current_app.config["ADMIN_TOKEN_MADE_UP"]:
        click.echo(f" * Development admin token: {token}  (set ADMIN_TOKEN to choose your own)")
    click.echo(f" * Database: {settings.database_url.split('@')[-1]}")
    click.echo(f" * Vector index: {settings.qdrant_url or 'Qdrant Edge at ' + str(settings.qdrant_path)}")
    click.echo(f" * Tasks: {'in-process' if settings.tasks_in_process else 'Celery on ' + settings.redis_url}")
    click.echo(f" * API on http://{host}:{port}/api/v1  (docs: http://{host}:{port}/docs)")
    _announce_model(settings)
    if production:
        from backend.production import run

        try:
            run(settings, host=host, port=port, workers=workers, threads=threads)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return
    from backend.maintenance import start_in_process_sweep

    start_in_process_sweep(current_app._get_current_object())  # type: ignore[attr-defined]
    # A process manager stops us with SIGTERM: exit cleanly so that atexit flushes and closes the store.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    # One process with threads: the embedded Qdrant store is locked to the process that opened it.
    run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)  # type: ignore[attr-defined]


def _announce_model(settings: Settings) -> None:
    """Name the model that embeds (ImageNet-pretrained or fine-tuned), and warn about an untrained live index."""
    from backend.active_index import active_collection, default_model_note
    from backend.extensions import db

    try:
        live = active_collection(session=db.session, settings=settings)
        note = default_model_note(session=db.session, settings=settings)
    except Exception as exc:  # no tables yet: the database is not migrated
        db.session.rollback()
        click.echo(f" * Model: unknown ({type(exc).__name__}); run `lookalike db upgrade` first", err=True)
        return
    from backend.embedding import is_untrained
    from ml.pretrained import builtin_arch

    if builtin_arch(live.model_version):
        kind = "ImageNet-pretrained, built in"
    elif is_untrained(settings, live.model_version):
        kind = "untrained network"
    else:
        kind = "fine-tuned checkpoint"
    click.echo(f" * Model: {live.model_version} ({kind})")
    if note:
        log.warning(note)


@contextmanager
def progress_bar(desc: str) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """A photo progress bar on stderr whose total is known later: yields (update, set_total)."""
    with tqdm(unit="photo", desc=desc, file=sys.stderr, dynamic_ncols=True) as bar:

        def set_total(n: int) -> None:
            bar.total = n
            bar.refresh()

        def update(n: int) -> None:
            bar.update(n)

        yield update, set_total


@click.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@with_appcontext
def import_command(directory: Path) -> None:
    """Import DIRECTORY/<category>/<photo>: one product per photo, category = folder name."""
    from backend.api import enqueue_embedding
    from backend.extensions import db
    from backend.importer import import_tree
    from backend.products import image_status_counts

    settings = current_app.config["SETTINGS"]
    with progress_bar("import") as (update, set_total):
        summary = import_tree(
            session=db.session,
            settings=settings,
            root=directory,
            enqueue=enqueue_embedding,
            progress=update,
            on_total=set_total,
        )
    click.echo(f"imported {summary.imported} products")
    if summary.skipped:
        click.echo(f"skipped {sum(summary.skipped.values())}:")
        for reason, count in summary.skipped.most_common():
            click.echo(f"  {count:6d}  {reason}  (e.g. {', '.join(summary.examples[reason])})")
    if settings.tasks_in_process:
        from backend.active_index import active_index

        active_index(session=db.session, settings=settings)[1].optimize()  # build the graph once, after the load
        db.session.expire_all()
        click.echo("photos: " + json.dumps(image_status_counts(session=db.session)))
    else:
        click.echo(f"enqueued {len(summary.image_ids)} photos for embedding; `lookalike stats` shows progress")


COMMANDS = [serve, import_command]
