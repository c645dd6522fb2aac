"""Photo checks by content, and storage under server-made names."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from backend.domain.photos import DECODE_MIN_SIDE, ImageLimits, MediaStorage, check_photo, open_photo, sniff_format
from backend.errors import ImageRejected
from ml.presets import to_rgb
from tests.utils import images

LIMITS = ImageLimits(max_bytes=5 * 1024 * 1024, max_pixels=40_000_000)


def test_accepts_real_images_by_content_whatever_the_name() -> None:
    checked = check_photo(images.jpeg(1), filename="photo.png", limits=LIMITS)
    assert (checked.format, checked.content_type, checked.width, checked.height) == ("JPEG", "image/jpeg", 96, 96)
    assert len(checked.sha256) == 64 and checked.original_filename == "photo.png"
    assert sniff_format(images.png(1)) == "PNG"


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GIF8 nope", 415, "unsupported_media_type"),
        (b"%PDF-1.7 ...", 415, "unsupported_media_type"),
        (b"", 400, "empty_image"),
        (images.truncated_jpeg(), 400, "invalid_image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, 400, "invalid_image"),
    ],
)
def test_rejections(data: bytes, status: int, code: str) -> None:
    with pytest.raises(ImageRejected) as caught:
        check_photo(data, filename="x", limits=LIMITS)
    assert caught.value.status == status and caught.value.kind == code


def test_too_many_bytes_is_413() -> None:
    with pytest.raises(ImageRejected) as caught:
        check_photo(images.png(1), filename="x", limits=ImageLimits(max_bytes=100, max_pixels=10**9))
    assert caught.value.status == 413


def test_decompression_bomb_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or original(self))
    with pytest.raises(ImageRejected) as caught:
        check_photo(images.bomb_png(), filename="bomb.png", limits=LIMITS)
    assert caught.value.status == 400 and "12000x12000 pixels" in caught.value.message
    assert caught.value.kind == "image_too_large"
    assert decoded == []
    check_photo(images.png(1), filename="ok.png", limits=LIMITS)
    assert decoded == [1]  # the spy does see a normal decode


def test_storage_names_and_round_trip(tmp_path: Path) -> None:
    storage = MediaStorage(tmp_path)
    checked = check_photo(images.png(4), filename="../../evil name.png", limits=LIMITS)
    name = storage.save(checked)
    assert name.endswith(".png") and "evil" not in name and storage.read(name) == images.png(4)
    assert storage.path(name).parent.parent == tmp_path
    for bad in ("../x.png", "ab/../../etc/passwd", "/etc/passwd"):
        with pytest.raises(ValueError):
            storage.path(bad)
    storage.delete(name)
    storage.delete(name)  # deleting twice is harmless
    assert not storage.path(name).exists()


@pytest.mark.parametrize(("width", "height"), [(6000, 1), (1, 6000), (40_000_000, 1), (2200, 200)])
def test_extreme_shapes_refused_from_the_header(width: int, height: int, monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or original(self))
    with pytest.raises(ImageRejected) as caught:
        check_photo(images.png_header(width, height), filename="thin.png", limits=LIMITS)
    assert caught.value.kind == "bad_aspect_ratio" and caught.value.status == 400
    assert f"{width}x{height}" in caught.value.message and decoded == []
    check_photo(images.thin_png(1000, 100), filename="ten-to-one.png", limits=LIMITS)  # 10:1 is allowed


def test_a_ratio_just_over_the_limit_is_shown_as_it_is() -> None:
    with pytest.raises(ImageRejected) as caught:
        check_photo(images.png_header(1040, 100), filename="wide.png", limits=LIMITS)
    assert "is 10.4:1, over the limit of 10:1" in caught.value.message  # it read "10:1, over the limit of 10:1"


def test_pillows_own_bomb_error_is_told_in_our_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses before our limit would
    with pytest.raises(ImageRejected) as caught:
        check_photo(images.png(1, 96), filename="big.png", limits=ImageLimits(max_bytes=10**7, max_pixels=10**9))
    assert caught.value.kind == "image_too_large" and caught.value.message == "big.png: over the limit of 2000 pixels"
    assert "DOS" not in caught.value.message


def test_reported_size_follows_exif_orientation() -> None:
    checked = check_photo(images.rotated_jpeg(60, 30, orientation=6), filename="turned.jpg", limits=LIMITS)
    assert (checked.width, checked.height) == (30, 60)


def test_photos_become_rgb_as_people_see_them() -> None:
    def rgb(data: bytes) -> Image.Image:
        return to_rgb(Image.open(io.BytesIO(data)))

    grey = rgb(images.sixteen_bit_png(32768))
    assert grey.mode == "RGB" and grey.getpixel((0, 0)) == (128, 128, 128)  # not clipped to white
    assert rgb(images.transparent_png()).getpixel((0, 0)) == (255, 255, 255)  # laid on white, not black
    turned = rgb(images.rotated_jpeg(60, 30, orientation=6))
    assert turned.size == (30, 60)
    red, green, blue = turned.getpixel((15, 3))  # the stored left band is on top once turned
    assert red > 200 and green < 50 and blue < 50


def big_jpeg(width: int, height: int) -> bytes:
    """A smooth photo of `width` x `height`, drawn small and scaled up (a camera's 36 Mpx is 7360x4912)."""
    small = Image.fromarray(images.noise(3, 48)).resize((96, 64))
    buffer = io.BytesIO()
    small.resize((width, height), Image.Resampling.BICUBIC).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_a_large_jpeg_is_decoded_scaled_down_for_the_embedder() -> None:
    """One 36 Mpx photo left a worker 280 MB larger: it was decoded whole (108 MB of pixels) to be shrunk to 256."""
    data = big_jpeg(7360, 4912)
    image = open_photo(data, max_pixels=10**8, max_aspect_ratio=10)
    assert image.size == (920, 614)  # an eighth: both sides still at least DECODE_MIN_SIDE
    assert min(image.size) >= DECODE_MIN_SIDE
    # ... and looks as the whole decode does, once both are at the embedder's size
    whole = Image.open(io.BytesIO(data)).convert("RGB").resize((384, 256), Image.Resampling.BOX)
    scaled = image.convert("RGB").resize((384, 256), Image.Resampling.BOX)
    difference = np.abs(np.asarray(whole, np.int16) - np.asarray(scaled, np.int16))
    assert difference.mean() < 2.0
    # A photo under twice the side is decoded as it is; a box asks for more pixels.
    assert open_photo(big_jpeg(1000, 800), max_pixels=10**8).size == (1000, 800)
    assert min(open_photo(data, max_pixels=10**8, max_aspect_ratio=10, min_side=2048).size) >= 2048


def test_the_upload_check_still_finds_a_large_truncated_jpeg() -> None:
    data = big_jpeg(4000, 3000)
    assert check_photo(data, filename="big.jpg", limits=ImageLimits(max_bytes=10**8, max_pixels=10**8)).width == 4000
    with pytest.raises(ImageRejected) as caught:
        check_photo(
            data[: len(data) * 2 // 3], filename="cut.jpg", limits=ImageLimits(max_bytes=10**8, max_pixels=10**8)
        )
    assert caught.value.kind == "invalid_image"
