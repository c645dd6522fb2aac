"""The shared real-photo data set, by path beside the repository (CI has it there)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLOTHING = ROOT.parent / "shared" / "datasets" / "clothing-small"


def clothing_small() -> Path:
    """The clothing-small root; a test that needs it fails in CI when it is missing, and skips elsewhere."""
    if not (CLOTHING / "validation").is_dir():
        message = f"the shared clothing-small photos are not at {CLOTHING}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return CLOTHING


def photos_of(category: str, n: int, split: str = "validation") -> list[Path]:
    return sorted((clothing_small() / split / category).glob("*.jpg"))[:n]
