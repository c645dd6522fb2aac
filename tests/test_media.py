"""Photo checks by content, and storage under server-made names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from backend.api.errors import http_status
from backend.errors import ImageRejected
from backend.media import MediaStorage, check_image, sniff_format
from ml.presets import to_rgb
from tests.utils import images

LIMITS = {"max_bytes": 5 * 1024 * 1024, "max_pixels": 40_000_000}


def test_accepts_real_images_by_content_whatever_the_name() -> None:
    checked = check_image(images.jpeg(1), filename="photo.png", **LIMITS)
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
        check_image(data, filename="x", **LIMITS)
    assert http_status(caught.value) == status and caught.value.kind == code


def test_too_many_bytes_is_413() -> None:
    with pytest.raises(ImageRejected) as caught:
        check_image(images.png(1), filename="x", max_bytes=100, max_pixels=10**9)
    assert http_status(caught.value) == 413


def test_decompression_bomb_rejected_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = []
    original = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(1) or original(self))
    with pytest.raises(ImageRejected) as caught:
        check_image(images.bomb_png(), filename="bomb.png", **LIMITS)
    assert http_status(caught.value) == 400 and "12000x12000 pixels" in caught.value.message
    assert caught.value.kind == "image_too_large"
    assert decoded == []
    check_image(images.png(1), filename="ok.png", **LIMITS)
    assert decoded == [1]  # the spy does see a normal decode


def test_storage_names_and_round_trip(tmp_path: Path) -> None:
    storage = MediaStorage(tmp_path)
    checked = check_image(images.png(4), filename="../../evil name.png", **LIMITS)
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
        check_image(images.png_header(width, height), filename="thin.png", **LIMITS)
    assert caught.value.kind == "bad_aspect_ratio" and http_status(caught.value) == 400
    assert f"{width}x{height}" in caught.value.message and decoded == []
    check_image(images.thin_png(1000, 100), filename="ten-to-one.png", **LIMITS)  # 10:1 is allowed


def test_a_ratio_just_over_the_limit_is_shown_as_it_is() -> None:
    with pytest.raises(ImageRejected) as caught:
        check_image(images.png_header(1040, 100), filename="wide.png", **LIMITS)
    assert "is 10.4:1, over the limit of 10:1" in caught.value.message  # it read "10:1, over the limit of 10:1"


def test_pillows_own_bomb_error_is_told_in_our_words(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses before our limit would
    with pytest.raises(ImageRejected) as caught:
        check_image(images.png(1, 96), filename="big.png", max_bytes=10**7, max_pixels=10**9)
    assert caught.value.kind == "image_too_large" and caught.value.message == "big.png: over the limit of 2000 pixels"
    assert "DOS" not in caught.value.message


def test_reported_size_follows_exif_orientation() -> None:
    checked = check_image(images.rotated_jpeg(60, 30, orientation=6), filename="turned.jpg", **LIMITS)
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
