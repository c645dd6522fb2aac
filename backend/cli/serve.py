"""`lookalike serve`: the API on the development server, or under waitress with `--production`.

Only the command's options here: what it runs (`backend.cli.server`) loads when it runs, so that
`lookalike serve --help` answers without importing the app, the vector store or waitress."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: HOST, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: PORT, 8000).")
@click.option("--production", is_flag=True, help="Serve with waitress (requests read whole before a thread sees them).")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="Serving processes (embedded: 1).")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="Threads per serving process.")
@with_appcontext
def serve(host: str | None, port: int | None, production: bool, workers: int | None, threads: int | None) -> None:
    """Serve the API: one process with threads on the embedded store; `--production` runs waitress."""
    # Here, not above: the app's modules (the store, the pipeline, waitress) load only when the command runs.
    from backend.cli.server import start

    start(host=host, port=port, production=production, workers=workers, threads=threads)
