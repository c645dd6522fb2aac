"""ResNet50 whose 1000-d `fc` output is the embedding, with the paper's classification head."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import ResNet50_Weights, resnet50

EMBEDDING_DIM = 1000
VALID_WEIGHTS = ("imagenet", "none", "<path to a state dict>")


class LookalikeNet(nn.Module):
    """torchvision ResNet50 (fc kept: 2048 -> 1000) followed by ReLU-256-ReLU-64-ReLU-classes."""

    def __init__(self, num_classes: int, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else resnet50(weights=None)
        self.head = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Linear(EMBEDDING_DIM, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, num_classes),
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The 1000-d activations of `fc`: what we index and compare."""
        return self.backbone(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))  # type: ignore[no-any-return]


def build_backbone(weights: str, *, seed: int = 0) -> nn.Module:
    """A ResNet50 with `weights` = 'imagenet', 'none' (seeded random) or a path to a state dict."""
    if weights == "imagenet":
        return _imagenet_backbone()
    if weights == "none":
        # Seeded so that every process builds the same untrained network and so the
        # same vectors: an index built by one worker stays valid for another.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return resnet50(weights=None)
    path = Path(weights)
    if not path.is_file():
        raise ValueError(f"unknown weights {weights!r}: expected one of {', '.join(VALID_WEIGHTS)}")
    model = resnet50(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model


class WeightsUnavailable(RuntimeError):
    """ImageNet weights are neither cached nor downloadable."""


def _imagenet_backbone() -> nn.Module:
    """torchvision's IMAGENET1K_V2, from its cache ($TORCH_HOME/hub/checkpoints) or downloaded there."""
    weights = ResNet50_Weights.IMAGENET1K_V2
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return resnet50(weights=weights)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        raise WeightsUnavailable(
            f"ImageNet weights for ResNet50 are not cached at {cached} and could not be downloaded ({exc}). "
            "Offline, use --weights none (random initialisation) or --weights PATH "
            "(a torchvision ResNet50 state dict on disk), or place the file at that path."
        ) from exc


def build_model(num_classes: int, weights: str = "none", *, seed: int = 0) -> LookalikeNet:
    return LookalikeNet(num_classes, build_backbone(weights, seed=seed))
