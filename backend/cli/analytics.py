"""`lookalike analytics export`: the shopper events as JSON lines (the same fields POST /api/v1/events takes), so
that a shop can replay its own history against another model."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path

import click
from flask.cli import with_appcontext

from backend.cli.checks import ready_database
from backend.core.extensions import db
from backend.services.events import export_events


@click.group("analytics")
def analytics_group() -> None:
    """Shopper events: export them as JSON lines, to evaluate a model on the shop's own history."""


def _day(value: str | None) -> date | None:
    return datetime.strptime(value, "%Y-%m-%d").date() if value else None


@analytics_group.command("export")
@click.option("--from", "start", default=None, help="First UTC day, YYYY-MM-DD (default: the first event).")
@click.option("--to", "end", default=None, help="Last UTC day, YYYY-MM-DD (default: the last event).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout).")
@with_appcontext
def export_command(start: str | None, end: str | None, out: Path | None) -> None:
    """Every event of the period, oldest first, one JSON object a line; the count on stderr."""
    ready_database()
    try:
        first, last = _day(start), _day(end)
    except ValueError as exc:
        raise click.BadParameter(f"a day is YYYY-MM-DD ({exc})") from None
    if first and last and last < first:
        raise click.BadParameter("--to is before --from")
    stream = out.open("w", encoding="utf-8") if out else sys.stdout
    count = 0
    try:
        for event in export_events(session=db.session, start=first, end=last):
            stream.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1
    finally:
        if out:
            stream.close()
    click.echo(f"{count} events", err=True)
