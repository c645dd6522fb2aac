"""Preprocessing in one place: every embedding uses exactly the eval preset."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2 as T

from ml.backbones import IMAGENET_MEAN, IMAGENET_STD
from ml.pixels import to_rgb

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "EvalPreset", "TrainPreset", "to_rgb"]


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
        return self.transforms(to_rgb(image))


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
        return self.transforms(to_rgb(image))
