"""The `lookalike` command: a Flask CLI group, so `lookalike db upgrade` works too."""

from __future__ import annotations

import click
from flask.cli import FlaskGroup

from backend.app import create_app


@click.group(cls=FlaskGroup, create_app=create_app, add_version_option=False, load_dotenv=True)
def cli() -> None:
    """Lookalike: visual similar items for product catalogs."""


def main() -> None:
    cli(prog_name="lookalike")
