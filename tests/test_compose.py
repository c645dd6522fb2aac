"""docker-compose.yml checked statically (no Docker engine here): every service runs a real command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from backend.cli import COMMANDS
from backend.config import Settings
from backend.core.metrics import MULTIPROC_ENV

ROOT = Path(__file__).resolve().parent.parent


def test_compose_services_run_lookalike_commands_with_known_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "qdrant", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    known = set(COMMANDS)
    # Settings, and the one variable a library reads from the environment itself (backend/core/metrics.py)
    fields = {name.upper() for name in Settings.model_fields} | {MULTIPROC_ENV}
    for name, service in services.items():
        command = service.get("command")
        if "build" in service:
            assert command[0] == "lookalike" and command[1] in known, name
            assert set(service["environment"]) <= fields, f"{name}: unknown settings"
            assert service["environment"]["ENVIRONMENT"] == "production"
    assert services["worker"]["environment"]["DEVICE"] == "cuda"
    for name in ("api", "worker", "index-worker"):  # their processes' metrics add up
        assert services[name]["environment"][MULTIPROC_ENV], name
    assert services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert services["worker"]["command"][services["worker"]["command"].index("-Q") + 1] == "embed"
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert (ROOT / "Dockerfile").read_text().count("uv sync --frozen") == 2


SECRETS = {
    "SECRET_KEY": "kQ7-vX2pLm9_Rt4wZc8N",
    "ADMIN_TOKEN": "Hy3_nB8qWe5-Ju1oPa6S",
    "FLOWER_BASIC_AUTH": "ops:Zt6-pQ2mWx",
    "POSTGRES_PASSWORD": "Lm4_vB9nQe",
}
LONG_RUNNING = {"postgres", "redis", "qdrant", "api", "worker", "index-worker", "beat", "flower"}


def docker_compose() -> str:
    """Debian's docker-compose (`make test` installs it); a missing one fails, naming the command that installs it."""
    found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is not installed: `make test-deps` (or apt-get install docker-compose)")
    return found


def compose_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [docker_compose(), "-f", str(ROOT / "docker-compose.yml"), "config"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_compose_config_is_valid_and_production_ready() -> None:
    result = compose_config(SECRETS)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    for name in LONG_RUNNING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("restart") == "unless-stopped", f"{name} has no restart policy"
    assert "/api/v1/health" in " ".join(services["api"]["healthcheck"]["test"])
    for name, service in services.items():
        assert not service["image"].endswith(":latest") or service["image"] == "lookalike:latest", name
    locked = re.search(r'name = "qdrant-client"\nversion = "(\d+)\.(\d+)', (ROOT / "uv.lock").read_text())
    assert locked is not None
    assert services["qdrant"]["image"].startswith(f"qdrant/qdrant:v{locked.group(1)}.{locked.group(2)}.")
    assert services["api"]["environment"]["SECRET_KEY"] == SECRETS["SECRET_KEY"]
    assert "models:/models:rw" in services["api"]["volumes"]  # checkpoints to register survive the container


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_stops_when_a_secret_is_missing(missing: str) -> None:
    result = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    assert result.returncode != 0 and f"set {missing}" in result.stderr


def test_image_runs_unprivileged_and_carries_no_secrets() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users and users[-1] not in {"root", "0"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".env", "tests", "bench", ".venv", "var"} <= set(ignored)


def test_cluster_profile_runs_three_qdrant_nodes_that_the_apps_can_spread_over() -> None:
    """`--profile cluster`: node 1 starts the cluster, nodes 2 and 3 join it on the peer port, each with its own
    storage; the apps take the cluster's URL and the collections' spread from the environment."""
    cluster = {"QDRANT_URL": "http://qdrant-node1:6333", "QDRANT_SHARDS": "3", "QDRANT_REPLICAS": "2"}
    result = subprocess.run(
        [docker_compose(), "-f", str(ROOT / "docker-compose.yml"), "--profile", "cluster", "config"],
        env={**os.environ, **SECRETS, **cluster},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    nodes = [services[f"qdrant-node{n}"] for n in (1, 2, 3)]
    assert all(node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true" for node in nodes)
    assert nodes[0]["command"] == ["./qdrant", "--uri", "http://qdrant-node1:6335"]
    for n, node in enumerate(nodes[1:], start=2):
        assert node["command"][node["command"].index("--bootstrap") + 1] == "http://qdrant-node1:6335"
        assert node["command"][node["command"].index("--uri") + 1] == f"http://qdrant-node{n}:6335"
        assert node["depends_on"]["qdrant-node1"]["condition"] == "service_healthy"
    assert len({node["volumes"][0].split(":")[0] for node in nodes}) == 3  # each node its own storage
    assert all(node["image"] == services["qdrant"]["image"] for node in nodes)
    for name in ("api", "worker", "index-worker"):
        env = services[name]["environment"]
        assert (env["QDRANT_URL"], env["QDRANT_SHARDS"], env["QDRANT_REPLICAS"]) == (
            "http://qdrant-node1:6333",
            "3",
            "2",
        )
        assert Settings(_env_file=None, **{k.lower(): v for k, v in env.items() if k.startswith("QDRANT_")})  # type: ignore[arg-type]
    plain = yaml.safe_load(compose_config(SECRETS).stdout)["services"]
    assert plain["api"]["environment"]["QDRANT_URL"] == "http://qdrant:6333"  # the single server by default
    assert plain["api"]["environment"]["QDRANT_SHARDS"] == "1"
