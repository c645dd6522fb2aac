"""Preprocessing in one place: every embedding uses exactly the eval preset."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms import v2 as T

from ml.backbones import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalPreset", "TrainPreset", "to_rgb"]
EXIF_ORIENTATION = 0x0112


def to_rgb(image: Image.Image) -> Image.Image:
    """The photo as a person sees it, in 8-bit RGB: EXIF orientation applied, 16-bit values scaled
    (not clipped to white), transparency laid on white (not black)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image).astype(np.float64)
        full_scale = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


class EvalPreset:
    """Resize the shorter side to size*256/224, centre-crop `size`, normalize."""

    def __init__(
        self,
        size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
    ) -> None:
        self.size = size
        self.mean, self.std = tuple(mean), tuple(std)
        self.transforms = T.Compose(
            [
                T.PILToTensor(),
                T.Resize(round(size * 256 / 224), antialias=True),
                T.CenterCrop(size),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(mean=list(mean), std=list(std)),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(to_rgb(image))  # type: ignore[no-any-return]


class TrainPreset:
    """Random resized crop and flip, then the same tensor conversion as the eval preset."""

    def __init__(
        self,
        size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        hflip_prob: float = 0.5,
        scale: tuple[float, float] = (0.08, 1.0),
    ) -> None:
        self.transforms = T.Compose(
            [
                T.PILToTensor(),
                T.RandomResizedCrop(size, scale=scale, antialias=True),
                T.RandomHorizontalFlip(hflip_prob),
                T.ToDtype(torch.float32, scale=True),
                T.Normalize(mean=list(mean), std=list(std)),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transforms(to_rgb(image))  # type: ignore[no-any-return]
