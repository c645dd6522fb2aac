"""The shape of the code: imports point one way, and `lookalike --help` loads neither the web app nor torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from backend.cli import COMMANDS, load_command
from tests.utils.imports import ROOT, library_imports, read_graph

MAX_DEFERRED = 12
MAX_PARAMETERS = 8  # more, and they travel together: a parameter object (ImageLimits, IndexingPolicy)
# backend/'s folders, each named for its role (the README's layout gives one line each).
FOLDERS = ("api", "web", "cli", "core", "domain", "services", "serving", "indexing", "worker", "db", "index")
# The edges parse, call one use case and render; nothing inside them imports one.
EDGES = ("backend.api", "backend.web", "backend.cli", "backend.app")


def _inner(module: str) -> bool:
    return module.startswith("backend.") and not module.startswith(EDGES)


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


def test_backend_has_four_modules_at_its_top_and_every_other_in_a_folder_named_for_its_role() -> None:
    top = {p.stem for p in (ROOT / "backend").glob("*.py")}
    folders = {p.name for p in (ROOT / "backend").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert top == {"__init__", "app", "config", "errors"}
    assert folders == set(FOLDERS)
    assert all((ROOT / "backend" / folder / "__init__.py").is_file() for folder in folders)


def test_inner_layers_never_import_an_edge() -> None:
    wrong = [(i.source, i.target) for i in read_graph().imports if _inner(i.source) and i.target.startswith(EDGES)]
    assert wrong == []


def test_the_pages_and_the_api_import_nothing_of_each_other() -> None:
    graph = read_graph()
    wrong = [
        (i.source, i.target)
        for i in graph.imports
        if (i.source.startswith("backend.web") and i.target.startswith("backend.api"))
        or (i.source.startswith("backend.api") and i.target.startswith("backend.web"))
    ]
    assert wrong == []


def test_domain_rules_stand_on_their_own() -> None:
    allowed = ("backend.domain", "backend.errors", "ml")
    wrong = [
        (i.source, i.target)
        for i in read_graph().imports
        if i.source.startswith("backend.domain") and not i.target.startswith(allowed)
    ]
    assert wrong == []


def test_use_cases_and_domain_rules_import_no_web_framework() -> None:
    web = {"flask", "apiflask", "werkzeug", "flask_wtf", "flask_limiter", "webargs"}
    found = {**library_imports("backend/services"), **library_imports("backend/domain")}
    assert {module: sorted(names & web) for module, names in found.items() if names & web} == {}


def test_no_function_in_backend_takes_more_than_eight_parameters() -> None:
    wide = []
    for path in sorted((ROOT / "backend").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]]
                count = len(names) + bool(args.vararg) + bool(args.kwarg) - (names[:1] in (["self"], ["cls"]))
                if count > MAX_PARAMETERS:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({count})")
    assert wide == []


def test_use_cases_take_and_give_typed_values_not_loose_dicts() -> None:
    loose = []
    for path in sorted((ROOT / "backend" / "services").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = node.args
                hints = [a.annotation for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.annotation]
                for hint in [*hints, *([node.returns] if node.returns else [])]:
                    if "dict[str, Any]" in ast.unparse(hint):
                        loose.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert loose == []


HEAVY = ["torch", "torchvision", "apiflask", "sqlalchemy", "celery", "qdrant_client", "qdrant_edge", "backend.app"]


def _loaded_by(*argv: str) -> tuple[list[str], str]:
    """The heavy modules `lookalike ARGV` imported, and what it printed."""
    probe = (
        "import sys, json\n"
        "from backend.cli import main\n"
        f"sys.argv = ['lookalike', *{list(argv)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    *printed, loaded = result.stdout.strip().splitlines()
    return json.loads(loaded), "\n".join(printed)


def test_help_loads_neither_the_web_app_nor_torch() -> None:
    loaded, listing = _loaded_by("--help")
    assert loaded == []
    assert all(name in listing for name in COMMANDS)


def test_serve_help_loads_neither_the_app_nor_the_store() -> None:
    loaded, text = _loaded_by("serve", "--help")
    assert loaded == []
    assert "--production" in text and "--workers" in text


def test_the_listed_help_is_each_commands_own() -> None:
    for name, (_, short_help) in COMMANDS.items():
        assert load_command(name).get_short_help_str(limit=1000) == short_help, name
