"""Batch embedder: photos in, 1000-d float32 vectors out. Shared by workers, API and CLI."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from ml.model import EMBEDDING_DIM, build_backbone
from ml.presets import IMAGENET_MEAN, IMAGENET_STD, EvalPreset

log = logging.getLogger(__name__)


def resolve_device(choice: str) -> torch.device:
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}: expected one of auto, cpu, cuda")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(choice)


def untrained_version(seed: int, image_size: int) -> str:
    """The model version of the deterministic untrained network."""
    return "untrained-" + hashlib.sha256(f"resnet50-none-seed{seed}-{image_size}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class EmbedderInfo:
    model_version: str
    trained: bool
    image_size: int
    device: str


class Embedder:
    """Wraps a network whose forward pass returns the 1000-d embedding."""

    def __init__(
        self,
        network: nn.Module,
        *,
        model_version: str,
        trained: bool,
        image_size: int = 224,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        device: str = "auto",
        batch_size: int = 32,
    ) -> None:
        self.device = resolve_device(device)
        self.network = network.eval().to(self.device)
        self.preset = EvalPreset(image_size, mean, std)
        self.batch_size = batch_size
        self.info = EmbedderInfo(model_version, trained, image_size, str(self.device))
        self.use_amp = self.device.type == "cuda"
        if self.use_amp:
            self.network = self.network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @classmethod
    def untrained(cls, *, seed: int = 0, image_size: int = 224, device: str = "auto", batch_size: int = 32) -> Embedder:
        """The deterministic untrained ResNet50, used until a trained model is registered."""
        version = untrained_version(seed, image_size)
        log.warning(
            "no trained model is registered: embedding with an untrained ResNet50 (%s); "
            "similar items will only reflect raw pixels until `lookalike train` and `lookalike model activate`",
            version,
        )
        network = build_backbone("none", seed=seed)
        return cls(
            network, model_version=version, trained=False, image_size=image_size, device=device, batch_size=batch_size
        )

    @property
    def model_version(self) -> str:
        return self.info.model_version

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preset(image) for image in images])

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Embed an already preprocessed batch."""
        batch = batch.to(self.device, non_blocking=True)
        if self.use_amp:
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.network(batch)
        else:
            out = self.network(batch)
        return out.float().cpu().numpy().astype(np.float32, copy=False)

    def embed(self, images: Iterable[Image.Image]) -> np.ndarray:
        """Embed decoded photos in batches; returns an (n, 1000) float32 array."""
        images = list(images)
        if not images:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        chunks = [
            self.forward(self.preprocess(images[start : start + self.batch_size]))
            for start in range(0, len(images), self.batch_size)
        ]
        return np.concatenate(chunks)
