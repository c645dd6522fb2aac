"""The shape of the code: imports point one way, and `lookalike --help` loads neither the web app nor torch."""

from __future__ import annotations

import json
import subprocess
import sys

from backend.cli import COMMANDS, load_command
from tests.utils.imports import read_graph

MAX_DEFERRED = 15


def test_no_import_cycle_counting_function_level_imports() -> None:
    assert read_graph().cycles() == []


def test_ml_imports_nothing_of_the_service() -> None:
    graph = read_graph()
    wrong = [i for i in graph.imports if i.source.startswith("ml") and not i.target.startswith("ml")]
    assert wrong == []


def test_function_level_imports_are_few_and_each_says_why() -> None:
    deferred = [i for i in read_graph().imports if i.deferred]
    statements = {(i.source, i.line) for i in deferred}
    assert 0 < len(statements) <= MAX_DEFERRED
    assert [i for i in deferred if not i.reason] == []


def test_web_layer_depends_on_use_cases_never_the_reverse() -> None:
    graph = read_graph()
    inward = ("backend.db", "backend.pipeline", "backend.index", "backend.similar", "backend.media", "backend.errors")
    wrong = [
        (i.source, i.target)
        for i in graph.imports
        if i.source.startswith(inward) and i.target.startswith(("backend.api", "backend.cli", "backend.app"))
    ]
    assert wrong == []


def test_help_loads_neither_the_web_app_nor_torch() -> None:
    probe = (
        "import sys, json\n"
        "from backend.cli import main\n"
        "sys.argv = ['lookalike', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = ['torch', 'torchvision', 'apiflask', 'sqlalchemy', 'celery', 'qdrant_client', 'backend.app']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    *listing, loaded = result.stdout.strip().splitlines()
    assert json.loads(loaded) == []
    assert all(name in "\n".join(listing) for name in COMMANDS)


def test_the_listed_help_is_each_commands_own() -> None:
    for name, (_, short_help) in COMMANDS.items():
        assert load_command(name).get_short_help_str(limit=1000) == short_help, name
