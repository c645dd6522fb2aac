"""Model version names and kinds, without torch: what the service and the CLI's help need to know.

Built-in versions are each backbone with its ImageNet weights, named `<arch>-imagenet`; the untrained
network (tests) is named by a hash of its seed and input size; fine-tuned checkpoints by their content.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum

# The backbones of ml.backbones.ARCHS, in its order (a test keeps the two equal).
ARCH_NAMES = ("resnet50", "efficientnet_lite0", "efficientnet_lite2")
SUFFIX = "-imagenet"
DEFAULT_MODEL = "efficientnet_lite0" + SUFFIX
EMBEDDING_DIM = 1000  # the paper's vector: the backbone's 1000-way head, for every model
UNTRAINED = "untrained"  # the name that asks for the deterministic untrained network (tests)
# The definition of the look and kind vectors (ml.descriptors); a collection records the one it was built with,
# so that a stale one is named and a reindex moves it. 1: before the look's centre prior; 2: with it.
DESCRIPTORS = 2


class Origin(StrEnum):
    """Where a model's weights come from: what /stats and the log tell an operator."""

    untrained = "untrained"  # seeded random network: tests only
    pretrained = "imagenet-pretrained"
    fine_tuned = "fine-tuned"


class Normalize(StrEnum):
    """Whether vectors are indexed as the network gives them or scaled to unit length."""

    raw = "raw"
    l2 = "l2"


class WeightsUnavailable(RuntimeError):
    """ImageNet weights for a backbone cannot be had here (not installed, not cached, no network)."""


class UnknownArch(ValueError):
    """An architecture name that is not one of ARCHS."""


class DatasetError(ValueError):
    """The dataset cannot be read as asked: a missing file, an unknown class, an empty split."""


def builtin_name(arch: str) -> str:
    return arch + SUFFIX


def builtin_names() -> list[str]:
    return [builtin_name(arch) for arch in ARCH_NAMES]


def builtin_arch(version: str) -> str | None:
    """The architecture of a built-in version name, or None when `version` is not one."""
    arch = version.removesuffix(SUFFIX)
    return arch if version.endswith(SUFFIX) and arch in ARCH_NAMES else None


def untrained_version(seed: int, image_size: int) -> str:
    """The model version of the deterministic untrained network."""
    return "untrained-" + hashlib.sha256(f"resnet50-none-seed{seed}-{image_size}".encode()).hexdigest()[:12]


# The similar-items calls' default `look`, how many of the nearest points by the kind vector it re-ranks,
# and how many of its best hits expand the query: the service's defaults (LOOK_DEFAULT, LOOK_CANDIDATES,
# LOOK_EXPANSION) and what `lookalike evaluate` measures.
DEFAULT_LOOK = 0.25
LOOK_CANDIDATES = 50
LOOK_EXPANSION = 2
EXPANSION_POWER = 3  # an expanding hit's weight: its cosine similarity to the query, to this power
