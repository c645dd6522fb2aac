"""Photo checks (by content, before anything is decoded) and storage under server-made names."""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from backend.errors import ImageRejected

# Magic numbers of the formats we accept; the client's filename and content type are never trusted.
SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"WEBP", 8, "WEBP"),
)
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
STORED_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}\.(jpg|png|gif|webp)")


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int
    sha256: str
    original_filename: str | None

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def sniff_format(data: bytes) -> str | None:
    for magic, offset, fmt in SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (fmt != "WEBP" or data[:4] == b"RIFF"):
            return fmt
    return None


def check_image(data: bytes, *, filename: str | None, max_bytes: int, max_pixels: int) -> CheckedImage:
    """Validate one uploaded photo; raise ImageRejected naming the file and the kind of problem."""
    label = filename or "upload"
    if len(data) > max_bytes:
        raise ImageRejected("file_too_large", f"{label}: {len(data)} bytes is over the limit of {max_bytes} bytes")
    if not data:
        raise ImageRejected("empty_image", f"{label}: the file is empty")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected("unsupported_media_type", f"{label}: not a JPEG, PNG, GIF or WebP image by its content")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below speaks first; Pillow's hard error stays as a backstop.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size  # read from the header only: nothing decoded yet
            if width * height > max_pixels:
                raise ImageRejected(
                    "image_too_large",
                    f"{label}: {width}x{height} pixels is over the limit of {max_pixels} pixels",
                )
            image.load()  # full decode: catches truncated and corrupt files
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejected("image_too_large", f"{label}: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("invalid_image", f"{label}: the {fmt} image is truncated or corrupt ({exc})") from exc
    if width < 1 or height < 1:
        raise ImageRejected("invalid_image", f"{label}: the image has no pixels")
    return CheckedImage(
        data=data,
        format=fmt,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        original_filename=filename[:255] if filename else None,
    )


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode a photo for embedding, with the same pixel guard as the upload check."""
    image = Image.open(io.BytesIO(data))
    if image.size[0] * image.size[1] > max_pixels:
        raise ValueError(f"{image.size[0]}x{image.size[1]} pixels is over the limit of {max_pixels}")
    image.load()
    return image


class MediaStorage:
    """Photos on the local disk under `root/ab/<uuid>.<ext>`; names are made here, never by the client."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stored_name: str) -> Path:
        if not STORED_NAME.fullmatch(stored_name):
            raise ValueError(f"invalid stored name {stored_name!r}")
        return self.root / stored_name

    def save(self, image: CheckedImage) -> str:
        name = uuid.uuid4().hex
        stored_name = f"{name[:2]}/{name}.{image.extension}"
        target = self.root / stored_name
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        with open(tmp, "wb") as fh:
            fh.write(image.data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # readers never see a half-written photo
        return stored_name

    def read(self, stored_name: str) -> bytes:
        return self.path(stored_name).read_bytes()

    def delete(self, stored_name: str) -> None:
        self.path(stored_name).unlink(missing_ok=True)
