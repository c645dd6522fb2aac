"""The `lookalike` command: a Flask CLI group (so `lookalike db upgrade` works too) holding every command.

Commands are registered here, never by `create_app`, and each command's module is imported only when
that command runs: `lookalike --help` imports neither the web app nor torch. The one-line help of each
command is therefore written here too; a test keeps it equal to the command's own docstring.
"""

from __future__ import annotations

import importlib

import click
from flask import Flask
from flask.cli import FlaskGroup

# name -> (module:attribute, the command's short help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "backend.cli.serve:serve",
        "Serve the API: one process with threads on the embedded store; `--production` runs waitress.",
    ),
    "import": (
        "backend.cli.catalog:import_command",
        "Import a feed (FILE.csv or FILE.jsonl) or a folder of DIRECTORY/<category>/<photo>, upserted by sku.",
    ),
    "stats": (
        "backend.cli.pipeline:stats_command",
        "Print JSON: products, photos by status, the index and the model, as /api/v1/stats shows them.",
    ),
    "sweep": (
        "backend.cli.pipeline:sweep_command",
        "Re-enqueue lost and transiently failed photos; repair drift between the database and the index.",
    ),
    "reindex": (
        "backend.cli.pipeline:reindex_command",
        "Embed every photo into a new collection, switch to it atomically, drop the old one.",
    ),
    "worker": (
        "backend.cli.pipeline:worker",
        "Start a Celery worker (prefork pool) that embeds photos and keeps the index in step.",
    ),
    "beat": (
        "backend.cli.pipeline:beat",
        "Start Celery beat: the quick sweep every SWEEP_INTERVAL_S, the full one every SWEEP_FULL_INTERVAL_S.",
    ),
    "flower": (
        "backend.cli.pipeline:flower",
        "Start Flower, the Celery monitor, behind basic auth (FLOWER_BASIC_AUTH=user:password).",
    ),
    "analytics": (
        "backend.cli.analytics:analytics_group",
        "Shopper events: export them as JSON lines, to evaluate a model on the shop's own history.",
    ),
    "train": (
        "backend.cli.models:train_command",
        "Fine-tune an ImageNet backbone in two phases; writes best.pt, last.pt, metrics.json, curves.png.",
    ),
    "evaluate": (
        "backend.cli.models:evaluate_command",
        "Top-1/top-3, retrieval P@k and mAP@k (raw and L2) against the pretrained start, untrained and colour.",
    ),
    "embed": (
        "backend.cli.models:embed_command",
        "Embed every photo under DIRECTORY with the workers' Embedder; OUT gets the vectors, OUT.ids.json the paths.",
    ),
    "experiment": (
        "backend.cli.experiments:experiment_group",
        "Model A/B tests: start one (its arms' collections live side by side), show it, stop it keeping one arm.",
    ),
    "model": ("backend.cli.models:model_group", "The model registry: register checkpoints, list them, activate one."),
    "db": ("flask_migrate.cli:db", "Perform database migrations."),
    "routes": ("flask.cli:routes_command", "Show the routes for the app."),
    "run": ("flask.cli:run_command", "Run a development server."),
    "shell": ("flask.cli:shell_command", "Run a shell in the app context."),
    "spec": ("apiflask.commands:spec_command", "Show the OpenAPI spec."),
}


def load_command(name: str) -> click.Command:
    module, attribute = COMMANDS[name][0].split(":")
    command: click.Command = getattr(importlib.import_module(module), attribute)
    return command


def _create_app() -> Flask:
    """The app from the environment; bad settings stop the command with one line, not a traceback."""
    # Imported here, not above: the web app's imports (apiflask, SQLAlchemy, Celery) wait for a command that needs it.
    from backend.app import StartupError, create_app

    try:
        return create_app()
    except StartupError as exc:
        raise click.ClickException(str(exc)) from exc


class LookalikeGroup(FlaskGroup):
    """A FlaskGroup whose commands are imported on first use and listed from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][1]) for name in self.list_commands(ctx)])


cli = LookalikeGroup(
    name="lookalike",
    help="Lookalike: visual similar items for product catalogs.",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=True,
)


def main() -> None:
    cli(prog_name="lookalike")
