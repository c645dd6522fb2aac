"""The benchmarks' and docs' scripts cannot rot unseen: every project name they import, and every `mock.patch`
target they name, resolves against the code as it is now (they are run by hand, not by the tests)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p for folder in ("bench", "docs", "scripts") for p in (ROOT / folder).rglob("*.py"))
PROJECT = ("backend", "ml", "tests")
PATCHERS = {"patch", "setattr"}


def _resolves(dotted: str) -> bool:
    """`a.b.c`: a module, or an attribute of the longest module prefix."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(target, name):
                return False
            target = getattr(target, name)
        return True
    return False


def project_names(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every project import and patch target in one script."""
    names: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name) for a in node.names if a.name.startswith(PROJECT)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PROJECT) and not node.level:
            names += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PATCHERS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith(PROJECT):
                names.append((node.lineno, first.value))
    return names


def test_there_are_scripts_to_check() -> None:
    assert len(SCRIPTS) >= 10 and sum(len(project_names(p)) for p in SCRIPTS) >= 30


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_name_a_script_uses_resolves(path: Path) -> None:
    missing = [f"line {line}: {name}" for line, name in project_names(path) if not _resolves(name)]
    assert missing == []


def test_a_patch_of_a_removed_name_is_caught(tmp_path: Path) -> None:
    script = tmp_path / "old.py"
    script.write_text(
        "from unittest import mock\n"
        "from backend.services.feeds import import_rows\n"
        'mock.patch("backend.api.enqueue_embedding")\n'
    )
    assert [name for _, name in project_names(script) if not _resolves(name)] == ["backend.api.enqueue_embedding"]
