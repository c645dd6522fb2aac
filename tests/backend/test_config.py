"""Settings: embedded defaults with nothing set; default secrets refused outside development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backend.config import Settings


def test_embedded_defaults(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, var_dir=tmp_path)
    assert settings.database_url == f"sqlite:///{(tmp_path / 'lookalike.db').resolve()}"
    assert settings.qdrant_path == tmp_path / "qdrant" and settings.media_root == tmp_path / "media"
    assert settings.embedded_index and settings.tasks_in_process
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_development_token_is_made_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, var_dir=tmp_path)
    token, made_up = settings.resolve_admin_token()
    assert made_up and len(token) >= 24
    assert Settings(_env_file=None, var_dir=tmp_path).resolve_admin_token() == (token, True)
    assert Settings(_env_file=None, var_dir=tmp_path, admin_token="chosen").resolve_admin_token() == ("chosen", False)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"admin_token": "a" * 32}, "SECRET_KEY"),
        ({"secret_key": "s" * 32}, "ADMIN_TOKEN"),
        ({"secret_key": "s" * 32, "admin_token": "short"}, "ADMIN_TOKEN"),
    ],
)
def test_production_refuses_default_secrets(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, environment="production", **values)
    Settings(_env_file=None, environment="production", secret_key="s" * 32, admin_token="a" * 32)


def test_environment_and_postgres_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/shop")
    monkeypatch.setenv("MAX_UPLOAD_MB", "2")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://u@db:5432/shop"
    assert settings.max_upload_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings(_env_file=None)
