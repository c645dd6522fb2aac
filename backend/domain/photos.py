"""Photo checks (by content, before anything is decoded) and storage under server-made names."""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from PIL import Image, UnidentifiedImageError

from backend.errors import ImageRejected
from ml.pixels import EXIF_ORIENTATION, to_rgb

if TYPE_CHECKING:
    from backend.config import Settings

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
SHARD = re.compile(r"[0-9a-f]{2}")
# Thumbnails: one JPEG per photo under MEDIA_ROOT/thumbs/, made once, the longer side THUMB_SIDE pixels.
THUMBS = "thumbs"
THUMB_SIDE = 320
CHECK_SIDE = 64  # the upload check decodes a JPEG down to this (it only looks for truncation and corruption)
# The shorter side a photo is decoded at, at least, for embedding (the eval preset's 256 for 224, with room for its
# antialiased resize) and thumbnails (THUMB_SIDE): a JPEG larger than twice this decodes scaled down.
DECODE_MIN_SIDE = 512
THUMB_QUALITY = 82


class Upload(Protocol):
    """An uploaded file as an edge receives it (Werkzeug's FileStorage is one): its name and its bytes."""

    filename: str | None
    stream: IO[bytes]


@dataclass(frozen=True)
class CheckedPhoto:
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


MAX_ASPECT_RATIO = 10.0


@dataclass(frozen=True)
class ImageLimits:
    """What a photo may be, for every path that takes one (upload, feed, folder, indexing): at most `max_bytes`
    (UPLOAD_MAX_BYTES), `max_pixels` (MAX_IMAGE_PIXELS) and `max_aspect_ratio` (MAX_ASPECT_RATIO) long to wide."""

    max_bytes: int
    max_pixels: int
    max_aspect_ratio: float = MAX_ASPECT_RATIO

    @classmethod
    def of(cls, settings: Settings) -> ImageLimits:
        return cls(settings.max_upload_bytes, settings.max_image_pixels, settings.max_aspect_ratio)


TURNED = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def header_guard(width: int, height: int, *, max_pixels: int, max_aspect_ratio: float) -> tuple[str, str] | None:
    """What is wrong with a photo of this size before any pixel is decoded, as (kind, reason), or None.

    The pixel count bounds the decode; the aspect ratio bounds the resize for embedding (the shorter side
    goes to 256 px: a 6000x1 photo would become 1,536,000 px wide)."""
    if width < 1 or height < 1:
        return "invalid_image", "the image has no pixels"
    if width * height > max_pixels:
        return "image_too_large", f"{width}x{height} pixels is over the limit of {max_pixels} pixels"
    ratio = max(width, height) / min(width, height)
    if ratio > max_aspect_ratio:
        # Not rounded to a whole number: 10.4:1 read "10:1, over the limit of 10:1".
        shown = f"{ratio:.2f}".rstrip("0").rstrip(".")
        return "bad_aspect_ratio", f"{width}x{height} is {shown}:1, over the limit of {max_aspect_ratio:g}:1"
    return None


def check_photo(
    data: bytes,
    *,
    filename: str | None,
    limits: ImageLimits,
) -> CheckedPhoto:
    """Validate one uploaded photo; raise ImageRejected naming the file and the kind of problem.

    The reported width and height are the photo's as shown, after its EXIF orientation."""
    max_bytes, max_pixels, max_aspect_ratio = limits.max_bytes, limits.max_pixels, limits.max_aspect_ratio
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
            refused = header_guard(width, height, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
            if refused is not None:
                raise ImageRejected(refused[0], f"{label}: {refused[1]}")
            if image.format == "JPEG":  # every byte is still decoded, to small pixels: a 36 Mpx photo took 108 MB
                image.draft(None, (CHECK_SIDE, CHECK_SIDE))
            image.load()  # full decode: catches truncated and corrupt files
            if "exif" in image.info and image.getexif().get(EXIF_ORIENTATION, 1) in TURNED:
                width, height = height, width
    except ImageRejected:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own text speaks of DOS attacks: ours names the limit
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))  # Pillow refuses past twice its own
        raise ImageRejected("image_too_large", f"{label}: over the limit of {limit} pixels") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected("invalid_image", f"{label}: the {fmt} image is truncated or corrupt ({exc})") from exc
    return CheckedPhoto(
        data=data,
        format=fmt,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
        original_filename=filename[:255] if filename else None,
    )


class PhotoRefused(ValueError):
    """A stored photo over a limit that was lowered after it was uploaded."""


def open_photo(
    data: bytes, max_pixels: int, max_aspect_ratio: float = MAX_ASPECT_RATIO, *, min_side: int = DECODE_MIN_SIDE
) -> Image.Image:
    """Decode a photo for embedding, with the same guards as the upload check.

    A JPEG is decoded at the smallest of 1/1, 1/2, 1/4 or 1/8 of its size that keeps both sides at least
    `min_side` (libjpeg scales while it decodes): a 36 Mpx photo is 1.7 MB of pixels rather than 108 MB."""
    image = Image.open(io.BytesIO(data))
    refused = header_guard(*image.size, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio)
    if refused is not None:
        raise PhotoRefused(refused[1])
    if image.format == "JPEG":
        image.draft(None, (min_side, min_side))
    image.load()
    return image


def thumbnail_jpeg(image: Image.Image) -> bytes:
    """A photo as a thumbnail: as people see it (EXIF orientation, 16-bit, transparency on white), its longer
    side THUMB_SIDE pixels, in JPEG."""
    small = to_rgb(image)
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=THUMB_QUALITY, optimize=True, progressive=True)
    return buffer.getvalue()


class MediaStorage:
    """Photos on the local disk under `root/ab/<uuid>.<ext>`; names are made here, never by the client."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stored_name: str) -> Path:
        if not STORED_NAME.fullmatch(stored_name):
            raise ValueError(f"invalid stored name {stored_name!r}")
        return self.root / stored_name

    def thumbnail_path(self, stored_name: str) -> Path:
        self.path(stored_name)  # the same name check
        return self.root / THUMBS / Path(stored_name).with_suffix(".jpg")

    def thumbnail(self, stored_name: str, image: Image.Image | None = None, *, max_pixels: int) -> Path:
        """The photo's thumbnail, made now if it is not there yet (from `image` when the caller has it decoded).

        Oriented by EXIF, 16-bit and transparent photos as people see them, then JPEG; written atomically, so
        two requests that make it at once both leave a whole file."""
        target = self.thumbnail_path(stored_name)
        if target.is_file():
            return target
        if image is None:
            image = open_photo(self.read(stored_name), max_pixels, max_aspect_ratio=float("inf"))
        self._write(target, thumbnail_jpeg(image), durable=False)  # made again from the photo if a crash loses it
        return target

    def thumbnails(self) -> Iterator[tuple[str, Path]]:
        """Every thumbnail file as (the stored-name stem it belongs to, path)."""
        root = self.root / THUMBS
        if not root.is_dir():
            return
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                yield f"{folder.name}/{path.name.split('.')[0]}", path

    @staticmethod
    def _write(target: Path, data: bytes, *, durable: bool = True) -> None:
        """Atomically (readers never see a half-written file); `durable`: on the disk before the rename."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{uuid.uuid4().hex[:8]}.part")
        with open(tmp, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)

    def save(self, image: CheckedPhoto) -> str:
        name = uuid.uuid4().hex
        stored_name = f"{name[:2]}/{name}.{image.extension}"
        self._write(self.root / stored_name, image.data)
        return stored_name

    def files(self) -> Iterator[tuple[str, Path]]:
        """Every photo file under the root as (name relative to the root, path): photos and unfinished `.part`
        writes (thumbnails are listed by `thumbnails`)."""
        if not self.root.is_dir():
            return
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and SHARD.fullmatch(p.name)):
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                yield f"{folder.name}/{path.name}", path

    def read(self, stored_name: str) -> bytes:
        return self.path(stored_name).read_bytes()

    def delete(self, stored_name: str) -> None:
        self.path(stored_name).unlink(missing_ok=True)
        self.thumbnail_path(stored_name).unlink(missing_ok=True)
