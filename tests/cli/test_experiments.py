"""`lookalike experiment`: start, show and stop from the command line; a bad arm exits 2, a refusal 1."""

from __future__ import annotations

import json
from typing import Any

from tests.utils import images
from tests.utils.api import upload
from tests.utils.cli import cli_runner

CHALLENGER = "efficientnet_lite0-imagenet"


def test_start_show_and_stop_from_the_command_line(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    for n in range(3):
        upload(client, f"C{n}", images.png(n))
    runner = cli_runner(app)
    active = client.get("/api/v1/stats").json["model"]["version"]
    assert json.loads(runner.invoke(args=["experiment", "show"]).output) is None

    one = runner.invoke(args=["experiment", "start", "--arm", f"A={active}"])
    assert one.exit_code == 2 and "2 to 8 arms" in one.output
    unknown = runner.invoke(args=["experiment", "start", "--arm", f"A={active}", "--arm", "B=nope"])
    assert unknown.exit_code == 2 and "unknown model version 'nope'" in unknown.output

    started = runner.invoke(args=["experiment", "start", "--arm", f"A={active}:1", "--arm", f"B={CHALLENGER}:3"])
    assert started.exit_code == 0, started.output
    report = json.loads(started.output[started.output.index("{") :])
    assert [arm["weight"] for arm in report["arms"]] == [1, 3] and len(report["built"]) == 1
    shown = json.loads(runner.invoke(args=["experiment", "show"]).output)
    assert [arm["model_version"] for arm in shown["arms"]] == [active, CHALLENGER]
    again = runner.invoke(args=["experiment", "start", "--arm", f"A={active}", "--arm", f"B={CHALLENGER}"])
    assert again.exit_code == 1 and "an experiment is running" in again.output
    reindex = runner.invoke(args=["reindex"])
    assert reindex.exit_code == 1 and "stop it first" in reindex.output

    wrong = runner.invoke(args=["experiment", "stop", "--keep", "Z"])
    assert wrong.exit_code == 2 and "no arm 'Z'" in wrong.output
    stopped = runner.invoke(args=["experiment", "stop", "--keep", "B"])
    assert stopped.exit_code == 0, stopped.output
    assert json.loads(stopped.output)["switched"] is True
    assert client.get("/api/v1/stats").json["model"]["version"] == CHALLENGER
    assert runner.invoke(args=["experiment", "stop", "--keep", "B"]).exit_code == 1  # none runs now
