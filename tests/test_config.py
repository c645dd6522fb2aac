"""Settings: embedded defaults with nothing set; default secrets refused outside development."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from backend.config import Settings
from tests.utils.settings import make_settings


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


SECRET = "kQ7-vX2pLm9_Rt4wZc8N"  # a random-looking value of 20 characters
TOKEN = "Hy3_nB8qWe5-Ju1oPa6S"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"admin_token": TOKEN}, "SECRET_KEY is not set"),
        ({"secret_key": SECRET}, "ADMIN_TOKEN is not set"),
        ({"secret_key": SECRET, "admin_token": "short-Tok3n"}, "ADMIN_TOKEN is shorter than 16"),
        ({"secret_key": "a" * 16, "admin_token": TOKEN}, "SECRET_KEY has fewer than 6 different"),
        ({"secret_key": SECRET, "admin_token": " " * 16}, "ADMIN_TOKEN contains whitespace"),
        ({"secret_key": SECRET, "admin_token": "abcabcabcabcabcabc"}, "ADMIN_TOKEN has fewer than 6 different"),
        ({"secret_key": SECRET[:10] + " " + SECRET[10:], "admin_token": TOKEN}, "SECRET_KEY contains whitespace"),
    ],
)
def test_production_refuses_weak_secrets_without_quoting_them(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        Settings(_env_file=None, environment="production", **values)
    shown = str(caught.value)
    for value in (v for v in values.values() if v.strip()):
        assert value not in shown and value[-6:] not in shown
    Settings(_env_file=None, environment="production", secret_key=SECRET, admin_token=TOKEN)


@pytest.mark.parametrize("auth", [":", "ops:", ":pass", " : ", "nopassword"])
def test_flower_needs_a_user_and_a_password(tmp_path: Path, auth: str) -> None:
    with pytest.raises(ValidationError, match="FLOWER_BASIC_AUTH must be user:password"):
        Settings(_env_file=None, var_dir=tmp_path, flower_basic_auth=auth)


def test_environment_and_postgres_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db:5432/shop")
    monkeypatch.setenv("MAX_UPLOAD_MB", "2")
    settings = Settings(_env_file=None)
    assert settings.database_url == "postgresql+psycopg://u@db:5432/shop"
    assert settings.max_upload_bytes == 2 * 1024 * 1024
    monkeypatch.setenv("DEVICE", "tpu")
    with pytest.raises(ValidationError, match="device"):
        Settings(_env_file=None)


def test_settings_keep_time_limits_and_retries_below_the_visibility_timeout(tmp_path: Path, make_app: Any) -> None:
    with pytest.raises(ValueError, match="must exceed the task time limit"):
        make_settings(tmp_path, task_soft_time_limit_s=100, broker_visibility_timeout_s=120)
    with pytest.raises(ValueError, match="must stay below BROKER_VISIBILITY_TIMEOUT_S"):
        make_settings(tmp_path, retry_backoff_max_s=600, broker_visibility_timeout_s=600)
    with pytest.raises(ValueError, match="user:password"):
        make_settings(tmp_path, flower_basic_auth="nopassword")
    app = make_app()
    settings = app.config["SETTINGS"]
    conf = app.extensions["celery"].conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.task_soft_time_limit < conf.task_time_limit < conf.broker_transport_options["visibility_timeout"]
    assert settings.retry_backoff_max_s < conf.broker_transport_options["visibility_timeout"]
    assert conf.task_routes["lookalike.embed_images"] == {"queue": "embed"}
    assert conf.beat_schedule["sweep"]["schedule"] == 60.0
    assert conf.beat_schedule["sweep-full"] == {
        **conf.beat_schedule["sweep-full"],
        "schedule": 3600.0,
        "kwargs": {"full": True},
    }
