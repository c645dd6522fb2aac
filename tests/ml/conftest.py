"""Generated datasets: one colour per class, so that a tiny network can learn them on a CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.utils.colours import COLOURS, write_class_photos


@pytest.fixture
def split_tree(tmp_path: Path) -> Path:
    root = tmp_path / "colours"
    for seed, (name, colour) in enumerate(COLOURS.items()):
        write_class_photos(root / "train" / name, colour, 16, seed)
        write_class_photos(root / "validation" / name, colour, 5, seed + 100)
    return root
