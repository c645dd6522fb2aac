"""Built-in model versions: each backbone with its ImageNet weights, named `<arch>-imagenet`.

They are model versions like fine-tuned checkpoints (listed, activated, reindexed into their own
collection), with no file to register: the weights come with an installed package or a cache.
"""

from __future__ import annotations

from ml.backbones import build_backbone, get_arch
from ml.embedder import Embedder
from ml.versions import DEFAULT_MODEL, Normalize, Origin, builtin_arch, builtin_name, builtin_names

__all__ = ["DEFAULT_MODEL", "builtin_arch", "builtin_name", "builtin_names", "pretrained_embedder", "starting_point"]
# L2 measured better than raw for every ImageNet backbone on clothing-small (see the README).
PRETRAINED_NORMALIZE = Normalize.l2


def starting_point(checkpoint: dict[str, object]) -> str | None:
    """The built-in model a checkpoint was fine-tuned from, when it started from ImageNet weights."""
    return builtin_name(str(checkpoint["arch"])) if checkpoint.get("weights") == "imagenet" else None


def pretrained_embedder(version: str, *, device: str = "auto", batch_size: int = 32) -> Embedder:
    """The embedder of a built-in version; WeightsUnavailable when its weights cannot be had here."""
    arch_name = builtin_arch(version)
    if arch_name is None:
        raise ValueError(f"{version!r} is not a built-in model: expected one of {', '.join(builtin_names())}")
    arch = get_arch(arch_name)
    return Embedder(
        build_backbone(arch.name, "imagenet"),
        model_version=version,
        arch=arch.name,
        origin=Origin.pretrained,
        normalize=PRETRAINED_NORMALIZE,
        image_size=arch.image_size,
        mean=arch.mean,
        std=arch.std,
        device=device,
        batch_size=batch_size,
    )
