"""`lookalike import`: a folder of photos into the catalog, with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from backend.cli.checks import ready_database
from backend.cli.progress import progress_bar
from backend.config import current_settings
from backend.db.products import image_status_counts
from backend.extensions import db
from backend.importer import import_tree
from backend.pipeline.active import active_index
from backend.pipeline.enqueue import enqueue_embedding


@click.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@with_appcontext
def import_command(directory: Path) -> None:
    """Import DIRECTORY/<category>/<photo>: one product per photo, category = folder name."""
    settings = current_settings()
    ready_database()
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
        active_index(session=db.session, settings=settings)[1].optimize()  # build the graph once, after the load
        db.session.expire_all()
        click.echo("photos: " + json.dumps(image_status_counts(session=db.session)))
    else:
        click.echo(f"enqueued {len(summary.image_ids)} photos for embedding; `lookalike stats` shows progress")
