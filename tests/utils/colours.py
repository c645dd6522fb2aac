"""Generated photo sets: one colour per class, so that a tiny network can learn them on a CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}


def write_class_photos(folder: Path, colour: tuple[int, int, int], count: int, seed: int, size: int = 40) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        array = np.clip(np.array(colour) + rng.normal(0, 30, (size, size, 3)), 0, 255).astype("uint8")
        Image.fromarray(array).save(folder / f"{i:03d}.png")
