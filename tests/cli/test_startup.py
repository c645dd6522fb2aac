"""Starting a command: the embedded default migrates itself on `serve`; a database that is unreachable, not
migrated or misnamed, and settings that are refused, stop with one line naming the fix."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.utils.server import LOOKALIKE, running_server
from tests.utils.settings import fresh_database


def lookalike(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "QDRANT_URL"}}
    base.update(VAR_DIR=str(tmp_path / "var"), DEFAULT_MODEL="untrained", **env)
    return subprocess.run([LOOKALIKE, *args], env=base, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_serve_migrates_the_embedded_default_itself(tmp_path: Path) -> None:
    with running_server(tmp_path, migrate=False) as (base, _):
        assert httpx.get(f"{base}/api/v1/health", timeout=5).json()["status"] == "ok"
        assert httpx.get(f"{base}/api/v1/products", timeout=5).json()["total"] == 0
    assert "migrated to the latest schema" in (tmp_path / "serve.log").read_text()


@pytest.mark.parametrize("command", [["serve"], ["stats"], ["import", "."], ["sweep"]])
def test_a_malformed_database_url_is_one_line(tmp_path: Path, command: list[str]) -> None:
    line = one_line_error(lookalike(tmp_path, *command, DATABASE_URL="postgres//nohost"))
    assert "DATABASE_URL is not a database URL" in line


@pytest.mark.parametrize("command", [["serve"], ["stats"], ["sweep"]])
def test_an_unreachable_database_is_one_line_without_its_password(tmp_path: Path, command: list[str]) -> None:
    url = "postgresql://shop:s3cret-pw@127.0.0.1:1/catalog"  # nothing listens on port 1
    line = one_line_error(lookalike(tmp_path, *command, DATABASE_URL=url))
    assert "cannot reach the database" in line and "127.0.0.1:1/catalog" in line and "s3cret-pw" not in line


def test_postgresql_without_migrations_names_the_command(tmp_path: Path) -> None:
    with fresh_database("lookalike_startup", "the start-up test") as url:
        line = one_line_error(lookalike(tmp_path, "serve", DATABASE_URL=url))
    assert "has no tables yet" in line and "run `lookalike db upgrade`" in line


def test_refused_settings_are_one_line_without_the_secret(tmp_path: Path) -> None:
    line = one_line_error(lookalike(tmp_path, "serve", ENVIRONMENT="production", SECRET_KEY="x" * 24))
    assert "SECRET_KEY has fewer than 6 different characters" in line and "xxxxxx" not in line
