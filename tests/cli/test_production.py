"""Production serving layout: one process on the embedded store, several on the Qdrant server."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.cli.production import worker_layout
from tests.utils.settings import make_settings


def test_embedded_store_serves_from_one_process(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert worker_layout(settings, None, None) == (1, 8)
    assert worker_layout(settings, 1, 3) == (1, 3)
    with pytest.raises(ValueError, match="locked to one process"):
        worker_layout(settings, 4, None)


def test_qdrant_server_allows_several_processes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, qdrant_url="http://127.0.0.1:6333")
    assert worker_layout(settings, None, None) == (4, 4)
    assert worker_layout(settings, 2, 8) == (2, 8)
