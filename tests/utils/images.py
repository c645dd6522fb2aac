"""Small generated photos for tests: distinct patterns, near-duplicates, broken files."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array.astype("uint8")).save(buffer, fmt)
    return buffer.getvalue()


def noise(seed: int, size: int = 96) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype("uint8")


def near_copy(array: np.ndarray, seed: int = 1, amount: int = 4) -> np.ndarray:
    jitter = np.random.default_rng(seed).integers(-amount, amount + 1, array.shape)
    return np.clip(array.astype(int) + jitter, 0, 255).astype("uint8")


def stripes(size: int = 96, color: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    array = np.zeros((size, size, 3), dtype="uint8")
    array[:, : size // 2] = color
    return array


def png(seed: int = 0, size: int = 96) -> bytes:
    return encode(noise(seed, size))


def jpeg(seed: int = 0, size: int = 96) -> bytes:
    return encode(noise(seed, size), "JPEG")


def truncated_jpeg() -> bytes:
    data = jpeg(3, 128)
    return data[: len(data) // 2]


def bomb_png(side: int = 12_000) -> bytes:
    """A tiny file that decodes to side*side pixels."""
    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, "PNG")
    return buffer.getvalue()
