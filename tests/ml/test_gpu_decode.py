"""Batched decoding for the GPU path (ml/gpu_decode.py), on the CPU fallback here; on CUDA in `pytest -m gpu`."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from ml.gpu_decode import decode_batch
from ml.presets import EvalPreset
from tests.utils import images

PRESET = EvalPreset(112)


def smooth_jpeg(seed: int, size: tuple[int, int] = (160, 120)) -> bytes:
    """A photo-like JPEG (smooth gradients: the two JPEG decoders agree to a grey level or two)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : size[1], 0 : size[0]]
    base = rng.uniform(0, 255, 3)
    array = np.stack([(base[c] + 0.6 * x + 0.3 * y * (c + 1)) % 255 for c in range(3)], axis=-1).astype(np.uint8)
    return images.encode(array, "JPEG")


def run(files: list[bytes], device: str) -> tuple[object, torch.Tensor]:
    found = decode_batch(files, PRESET, torch.device(device))
    return found, found.pixels.cpu()


def check_batch(device: str) -> None:
    files = [smooth_jpeg(1), images.png(2, 100), images.truncated_jpeg(), b"not a photo", smooth_jpeg(5, (90, 200))]
    found, pixels = run(files, device)
    assert found.kept == [0, 1, 4]  # type: ignore[attr-defined]
    assert found.failed == {2: "the file is not a readable image", 3: "the file is not a readable image"}  # type: ignore[attr-defined]
    assert pixels.shape == (3, 3, 112, 112)
    # As the CPU preset makes them from Pillow's decode (the embedder's own path), to JPEG decoders' rounding.
    for row, i in enumerate((0, 1, 4)):
        reference = PRESET(Image.open(io.BytesIO(files[i])))
        assert torch.mean(torch.abs(pixels[row] - reference)).item() < 0.03


def test_a_batch_decodes_jpegs_and_others_and_fails_only_the_unreadable_file() -> None:
    check_batch("cpu")


def test_a_rotated_jpeg_is_decoded_as_a_person_sees_it() -> None:
    files = [images.rotated_jpeg(60, 30, orientation=6)]  # stored 60x30, seen 30x60
    found, pixels = run(files, "cpu")
    reference = PRESET(Image.open(io.BytesIO(files[0])))
    assert found.kept == [0] and found.on_device == 0  # type: ignore[attr-defined]  # Pillow applied the EXIF turn
    assert torch.mean(torch.abs(pixels[0] - reference)).item() < 0.03


def test_an_all_bad_batch_is_empty_not_an_error() -> None:
    found, pixels = run([b"", b"GIF89a"], "cpu")
    assert found.kept == [] and set(found.failed) == {0, 1}  # type: ignore[attr-defined]
    assert pixels.shape == (0, 3, 112, 112)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_nvjpeg_decodes_the_batch_on_the_gpu() -> None:
    check_batch("cuda")
