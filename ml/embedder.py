"""Batch embedder: photos in, 1000-d float32 vectors out. Shared by workers, API and CLI."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from ml.backbones import IMAGENET_MEAN, IMAGENET_STD, build_backbone
from ml.descriptors import (
    COPY_DIM,
    COPY_VARIANTS,
    KIND_DIM,
    LOOK_DIM,
    FeatureTap,
    copy_vectors,
    kind_vectors,
    look_vectors,
)
from ml.presets import EvalPreset
from ml.versions import EMBEDDING_DIM, Normalize, Origin, untrained_version

log = logging.getLogger(__name__)


def resolve_device(choice: str) -> torch.device:
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"unknown device {choice!r}: expected one of auto, cpu, cuda")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    return torch.device(choice)


def l2_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


@dataclass(frozen=True)
class Descriptors:
    """Per photo: the 1000-d embedding, the look and kind vectors and the copy variants (see ml.descriptors)."""

    embedding: np.ndarray  # (n, 1000)
    look: np.ndarray  # (n, LOOK_DIM)
    copy: np.ndarray  # (n, COPY_VARIANTS, COPY_DIM)
    kind: np.ndarray  # (n, KIND_DIM)


@dataclass(frozen=True)
class EmbedderInfo:
    model_version: str
    arch: str
    origin: Origin
    normalize: Normalize
    image_size: int
    device: str

    @property
    def trained(self) -> bool:
        return self.origin is not Origin.untrained


class Embedder:
    """Wraps a network whose forward pass returns the 1000-d embedding."""

    def __init__(
        self,
        network: nn.Module,
        *,
        model_version: str,
        arch: str = "resnet50",
        origin: Origin = Origin.fine_tuned,
        normalize: Normalize = Normalize.raw,
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
        self.info = EmbedderInfo(
            model_version, arch, Origin(origin), Normalize(normalize), image_size, str(self.device)
        )
        self.use_amp = self.device.type == "cuda"
        self._mean = torch.tensor(mean).view(1, -1, 1, 1)
        self._std = torch.tensor(std).view(1, -1, 1, 1)
        self._tap: FeatureTap | None = None
        # channels_last: faster convolutions on CUDA, and measured no slower on CPU
        self.network = self.network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @classmethod
    def untrained(cls, *, seed: int = 0, image_size: int = 224, device: str = "auto", batch_size: int = 32) -> Embedder:
        """The deterministic untrained ResNet50: only when asked for (tests), never the default."""
        version = untrained_version(seed, image_size)
        log.info("embedding with the untrained ResNet50 %s (asked for explicitly)", version)
        network = build_backbone("resnet50", "none", seed=seed)
        return cls(
            network,
            model_version=version,
            origin=Origin.untrained,
            image_size=image_size,
            device=device,
            batch_size=batch_size,
        )

    @property
    def model_version(self) -> str:
        return self.info.model_version

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preset(image) for image in images])

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Embed an already preprocessed batch (normalized as the model version says)."""
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        if self.use_amp:
            with torch.autocast("cuda", dtype=torch.float16):
                out = self.network(batch)
        else:
            out = self.network(batch)
        vectors = out.float().cpu().numpy().astype(np.float32, copy=False)
        return l2_rows(vectors) if self.info.normalize is Normalize.l2 else vectors

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

    def describe(self, images: Iterable[Image.Image]) -> Descriptors:
        """The embedding, look, kind and copy descriptors of decoded photos, from one forward pass per batch."""
        images = list(images)
        if not images:
            return Descriptors(
                np.zeros((0, EMBEDDING_DIM), np.float32),
                np.zeros((0, LOOK_DIM), np.float32),
                np.zeros((0, COPY_VARIANTS, COPY_DIM), np.float32),
                np.zeros((0, KIND_DIM), np.float32),
            )
        if self._tap is None:
            self._tap = FeatureTap(self.network, self.info.arch)
        embeddings, looks, kinds = [], [], []
        for start in range(0, len(images), self.batch_size):
            batch = self.preprocess(images[start : start + self.batch_size])
            embeddings.append(self.forward(batch))
            mid, last = self._tap.take()
            looks.append(look_vectors(batch * self._std + self._mean, mid, last))
            kinds.append(kind_vectors(last))
        copies = np.stack([copy_vectors(image) for image in images]).astype(np.float32)
        return Descriptors(np.concatenate(embeddings), np.concatenate(looks), copies, np.concatenate(kinds))
