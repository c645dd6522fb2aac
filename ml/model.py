"""The paper's network: an ImageNet backbone whose 1000-d classifier output is the embedding, and its head."""

from __future__ import annotations

import torch
from torch import nn

from ml.backbones import build_backbone
from ml.versions import EMBEDDING_DIM

__all__ = ["EMBEDDING_DIM", "LookalikeNet", "build_model"]


class LookalikeNet(nn.Module):
    """A backbone (1000-d ImageNet classifier kept) followed by ReLU-256-ReLU-64-ReLU-classes."""

    def __init__(self, num_classes: int, backbone: nn.Module, arch: str = "resnet50") -> None:
        super().__init__()
        self.arch = arch
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Linear(EMBEDDING_DIM, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, num_classes),
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 1000-d activations of the classifier layer: what we index and compare."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def build_model(num_classes: int, weights: str = "none", *, arch: str = "resnet50", seed: int = 0) -> LookalikeNet:
    return LookalikeNet(num_classes, build_backbone(arch, weights, seed=seed), arch)
