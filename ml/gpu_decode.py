"""Decode and preprocess a batch of photo files on the GPU: JPEGs through nvJPEG (`torchvision.io.decode_jpeg` on
CUDA, one batched call), every other format and any JPEG nvJPEG refuses through Pillow on the CPU. A file neither
can read fails alone, with a reason: never the batch.

On a machine without CUDA the same calls decode on the CPU (torchvision's libjpeg-turbo), which is how the tests
run it; the GPU figures come from `bench/embed_throughput.py --device cuda --gpu-decode`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms.v2 import functional as F

from ml.pixels import to_rgb
from ml.presets import EvalPreset

log = logging.getLogger(__name__)
JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class DecodedBatch:
    """The batch as the network takes it (n, 3, size, size), normalized, on the device; `kept` the positions of
    the files in it, `failed` the others with why."""

    pixels: torch.Tensor
    kept: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    on_device: int = 0  # how many were decoded by nvJPEG (or torchvision's JPEG decoder, on the CPU)


def _needs_pillow(data: bytes) -> bool:
    """Not a baseline JPEG that a person sees as stored: other formats, and JPEGs with an EXIF orientation (decode_jpeg
    ignores it) go through Pillow, which applies it."""
    if not data.startswith(JPEG_MAGIC):
        return True
    return b"Exif\x00\x00" in data[:65536] and _exif_rotated(data)


def _exif_rotated(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(0x0112, 1)) != 1
    except Exception:
        return True  # let Pillow say what is wrong with it


def _pillow(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return F.pil_to_tensor(to_rgb(image))


def decode_batch(files: Sequence[bytes], preset: EvalPreset, device: torch.device) -> DecodedBatch:
    """Decode, resize (shorter side to size*256/224), centre-crop and normalize `files` as `preset` does, on
    `device`."""
    failed: dict[int, str] = {}
    tensors: dict[int, torch.Tensor] = {}
    jpegs = [i for i, data in enumerate(files) if not _needs_pillow(data)]
    on_device = 0
    if jpegs:
        try:
            batch = [torch.frombuffer(bytearray(files[i]), dtype=torch.uint8) for i in jpegs]
            decoded = decode_jpeg(batch, mode=ImageReadMode.RGB, device=device)
            tensors.update(zip(jpegs, decoded, strict=True))
            on_device = len(jpegs)
        except RuntimeError:  # one bad file fails the batched call: each alone, to find it
            for i in jpegs:
                try:
                    one = torch.frombuffer(bytearray(files[i]), dtype=torch.uint8)
                    tensors[i] = decode_jpeg(one, mode=ImageReadMode.RGB, device=device)
                    on_device += 1
                except RuntimeError:
                    pass  # Pillow tries it below, and says why if it cannot
    for i, data in enumerate(files):
        if i in tensors:
            continue
        try:
            tensors[i] = _pillow(data).to(device)
        except Exception as exc:
            log.warning("photo %d of the batch cannot be read: %s: %s", i, type(exc).__name__, exc)
            failed[i] = "the file is not a readable image"
    kept = sorted(tensors)
    side = round(preset.size * 256 / 224)
    mean = torch.tensor(preset.mean, device=device).view(-1, 1, 1)
    std = torch.tensor(preset.std, device=device).view(-1, 1, 1)
    pixels = [
        (F.center_crop(F.resize(tensors[i], side, antialias=True), [preset.size]).float() / 255.0 - mean) / std
        for i in kept
    ]
    stacked = torch.stack(pixels) if pixels else torch.zeros((0, 3, preset.size, preset.size), device=device)
    return DecodedBatch(stacked, kept, failed, on_device)
