"""docker-compose.yml checked statically (no Docker engine here): every service runs a real command."""

from __future__ import annotations

from pathlib import Path

import yaml

from backend.cli import COMMANDS
from backend.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_compose_services_run_lookalike_commands_with_known_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "qdrant", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    known = set(COMMANDS)
    fields = {name.upper() for name in Settings.model_fields}
    for name, service in services.items():
        command = service.get("command")
        if "build" in service:
            assert command[0] == "lookalike" and command[1] in known, name
            assert set(service["environment"]) <= fields, f"{name}: unknown settings"
            assert service["environment"]["ENVIRONMENT"] == "production"
    assert services["worker"]["environment"]["DEVICE"] == "cuda"
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert services["worker"]["command"][services["worker"]["command"].index("-Q") + 1] == "embed"
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (ROOT / "Dockerfile").read_text().count("uv sync --frozen") == 2
