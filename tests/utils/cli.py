"""Running `lookalike` commands in-process against a test app."""

from __future__ import annotations

from typing import Any

from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner

from backend.cli import cli


class LookalikeRunner(FlaskCliRunner):
    """`invoke(args=[...])` runs the `lookalike` group (not `app.cli`) with the test app as its app."""

    def invoke(self, cli_: Any = None, args: Any = None, **kwargs: Any) -> Result:  # type: ignore[override]
        return super().invoke(cli_ or cli, args, **kwargs)


def cli_runner(app: Flask) -> LookalikeRunner:
    return LookalikeRunner(app)
