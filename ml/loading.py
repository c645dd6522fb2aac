"""One way to choose an embedder by name, for the service and every script: the untrained network, a built-in
ImageNet-pretrained version, or a checkpoint file (a fine-tuned model)."""

from __future__ import annotations

from pathlib import Path

from ml.checkpoint import embedder_from_checkpoint
from ml.embedder import Embedder
from ml.pretrained import pretrained_embedder
from ml.versions import UNTRAINED, builtin_arch


def load_embedder(
    name: str | Path, *, device: str = "auto", batch_size: int = 32, image_size: int = 224, seed: int = 0
) -> Embedder:
    """`untrained` (the deterministic ResNet50 of `seed` at `image_size`), a built-in version such as
    `efficientnet_lite0-imagenet` (WeightsUnavailable when its weights are not here), or a checkpoint's path."""
    if str(name) == UNTRAINED:
        return Embedder.untrained(seed=seed, image_size=image_size, device=device, batch_size=batch_size)
    if builtin_arch(str(name)) is not None:
        return pretrained_embedder(str(name), device=device, batch_size=batch_size)
    return embedder_from_checkpoint(Path(name), device=device, batch_size=batch_size)
