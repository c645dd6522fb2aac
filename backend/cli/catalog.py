"""`lookalike import`: a catalog feed (CSV or JSON lines) or a folder of photos into the catalog, with a
progress bar and a summary."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path

import click
from flask.cli import with_appcontext

from backend.cli.checks import embedded_store_free, ready_database
from backend.cli.progress import progress_bar
from backend.config import Settings, current_settings
from backend.core.extensions import db
from backend.db.products import photo_status_counts
from backend.errors import FeedUnreadable
from backend.services.feeds import (
    FeedSummary,
    FolderPhotos,
    Handoff,
    count_rows,
    feed_format,
    import_rows,
    read_rows,
    tree_rows,
)
from backend.serving.active import active_index
from backend.worker.enqueue import enqueue_embedding, enqueue_payload_sync, enqueue_point_deletes

# Exit statuses: 0 every row in (or unchanged), 1 the feed cannot be read (or the store is held), 3 some rows
# were skipped.
EXIT_UNREADABLE, EXIT_SKIPPED = 1, 3


@click.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and check the feed; say what would change; write nothing.")
@click.option(
    "--photos",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The folder the feed's photo paths are relative to (default: the feed's own folder).",
)
@with_appcontext
def import_command(source: Path, dry_run: bool, photos: Path | None) -> None:
    """Import a feed (FILE.csv or FILE.jsonl) or a folder of DIRECTORY/<category>/<photo>, upserted by sku.

    A feed's columns: sku, title, category, brand, price, attributes (a JSON object) and images (paths
    relative to the feed, `|`-separated in CSV, a list in JSON lines). A folder gives one product per photo:
    category the folder's name, sku `<category>-<file stem>`. Both take the same path: rows for known skus
    update their product, unchanged rows write nothing, bad rows are skipped with their line (a folder's: the
    photo's number) and reason, and DUPLICATES applies. Exit status: 0 all rows in, 1 the feed cannot be read,
    3 some rows were skipped.
    """
    settings = current_settings()
    ready_database()
    if not dry_run and settings.tasks_in_process:  # this process embeds into the store itself
        embedded_store_free(
            settings,
            what="nothing was imported",
            instead="Stop it and run this again, or send the feed to the running server: POST /api/v1/imports"
            " (see the README), or the admin pages.",
        )
    if source.is_dir():
        if photos is not None:
            raise click.UsageError("--photos is for feeds (a .csv or .jsonl file): a folder holds its own photos")
        listed = list(tree_rows(source))  # the folder walked once: its rows and the progress bar's total
        rows, total, item = iter(listed), len(listed), "photo"
        photo_source = FolderPhotos(source, confined=False)
    else:
        try:
            fmt = feed_format(source.name)
        except FeedUnreadable as exc:
            raise click.UsageError(exc.message) from None
        rows, total, item = None, count_rows(source), "line"
        photo_source = FolderPhotos(photos or source.parent)
    handoff = Handoff(embed=enqueue_embedding, payload_sync=enqueue_payload_sync, point_deletes=enqueue_point_deletes)
    try:
        with progress_bar("dry run" if dry_run else "import", unit="row") as (update, set_total):
            set_total(total)
            with ExitStack() as stack:
                if rows is None:
                    rows = read_rows(stack.enter_context(source.open("rb")), fmt)
                summary = import_rows(
                    session=db.session,
                    settings=settings,
                    rows=rows,
                    photos=photo_source,
                    handoff=handoff,
                    dry_run=dry_run,
                    progress=update,
                )
    except FeedUnreadable as exc:
        click.echo(f"error: {source.name}: {exc.message}", err=True)
        sys.exit(EXIT_UNREADABLE)
    _print_summary(summary, dry_run, item)
    if not dry_run:
        _after_load(settings, summary.image_ids)
    if summary.skipped:
        sys.exit(EXIT_SKIPPED)


def _print_summary(summary: FeedSummary, dry_run: bool, item: str) -> None:
    would = "would be " if dry_run else ""
    click.echo(
        f"{summary.rows} rows: {summary.created} {would}created, {summary.updated} {would}updated,"
        f" {summary.unchanged} unchanged, {sum(summary.skipped.values())} skipped"
    )
    click.echo(f"photos: {summary.photos_added} {would}added, {summary.photos_removed} {would}removed")
    if summary.skipped:
        click.echo("skipped by reason:")
        for reason, count in summary.skipped.most_common():
            click.echo(f"  {count:6d}  {reason}")
        for error in summary.errors:
            sku = f" ({error['sku']})" if error["sku"] else ""
            click.echo(f"  {item} {error['line']}{sku}: {error['message']}")


def _after_load(settings: Settings, image_ids: list[int]) -> None:
    if settings.tasks_in_process:
        if image_ids:
            active_index(session=db.session, settings=settings)[1].optimize()  # build the graph once, after the load
        db.session.expire_all()
        click.echo("photos: " + json.dumps(photo_status_counts(session=db.session)))
    else:
        click.echo(f"enqueued {len(image_ids)} photos for embedding; `lookalike stats` shows progress")
