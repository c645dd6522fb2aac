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


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit grey) in a few bytes; its pixel data is one empty row."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def thin_png(width: int, height: int = 1) -> bytes:
    """A real, decodable width x height grey PNG (a few hundred bytes when it is one row)."""
    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, "PNG")
    return buffer.getvalue()


def rotated_jpeg(width: int = 60, height: int = 30, orientation: int = 6) -> bytes:
    """A JPEG stored width x height whose EXIF says to turn it (6: 90 degrees clockwise to view)."""
    array = np.zeros((height, width, 3), dtype="uint8")
    array[:, : width // 3] = (255, 0, 0)  # a red band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def sixteen_bit_png(value: int = 32768, size: int = 16) -> bytes:
    """A 16-bit greyscale PNG of one value (32768 is mid-grey)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size), value, dtype=np.uint16)).save(buffer, "PNG")
    return buffer.getvalue()


def transparent_png(size: int = 16) -> bytes:
    """An RGBA PNG, black where it is fully transparent."""
    array = np.zeros((size, size, 4), dtype="uint8")
    buffer = io.BytesIO()
    Image.fromarray(array, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()
