"""Training on a CPU: loss falls, accuracy beats chance, checkpoints and resume, ImageNet weights offline."""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
from torchvision.models import resnet50

from ml.backbones import WeightsUnavailable, build_backbone
from ml.checkpoint import load_checkpoint
from ml.train import TrainConfig, main

FAST = {
    "recipe": "full",
    "arch": "resnet50",
    "image_size": 32,
    "batch_size": 16,
    "workers": 0,
    "device": "cpu",
    "progress": False,
}


@pytest.mark.slow
def test_short_training_learns(split_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = TrainConfig(
        data=str(split_tree), out=str(out), weights="none", epochs_head=4, epochs_finetune=3,
        lr_head=3e-3, lr_finetune=1e-3, **FAST,
    )  # fmt: skip
    metrics = main(config)
    history = metrics["epochs"]
    assert [h["phase"] for h in history] == ["head"] * 4 + ["finetune"] * 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(h["top1"] for h in history) > 0.5  # four classes: chance is 0.25
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    best = load_checkpoint(out / "best.pt")
    assert best["class_names"] == ["blue", "green", "red", "yellow"] and best["image_size"] == 32
    assert best["metrics"]["top1"] == metrics["best"]["top1"]
    assert json.loads((out / "metrics.json").read_text())["best"]["top1"] == metrics["best"]["top1"]


def test_head_phase_freezes_backbone_and_resume_continues(split_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = main(
        TrainConfig(data=str(split_tree), out=str(out), weights="none", epochs_head=1, epochs_finetune=0, **FAST)
    )
    after_head = load_checkpoint(out / "last.pt")["model"]
    untouched = build_backbone("resnet50", "none", seed=0).state_dict()
    assert torch.equal(after_head["backbone.conv1.weight"], untouched["conv1.weight"])  # frozen in phase 1
    assert torch.equal(after_head["backbone.bn1.running_mean"], untouched["bn1.running_mean"])
    assert len(first["epochs"]) == 1

    resumed = main(
        TrainConfig(data=str(split_tree), out=str(out), weights="none", epochs_head=2, epochs_finetune=1,
                    resume=True, **FAST)
    )  # fmt: skip
    assert [(h["phase"], h["epoch"]) for h in resumed["epochs"]] == [("head", 0), ("head", 1), ("finetune", 0)]
    assert resumed["epochs"][0] == first["epochs"][0]  # history carried over, not redone
    final = load_checkpoint(out / "last.pt")["model"]
    assert not torch.equal(final["backbone.conv1.weight"], untouched["conv1.weight"])  # phase 2 trains it


def test_resume_without_checkpoint_fails(split_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main(TrainConfig(data=str(split_tree), out=str(tmp_path / "x"), weights="none", resume=True, **FAST))


def test_imagenet_weights_load_from_the_torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(123)
    reference = resnet50(weights=None).state_dict()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(reference, cache / "resnet50-11ad3fa6.pth")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    loaded = build_backbone("resnet50", "imagenet").state_dict()
    assert all(torch.equal(loaded[k], reference[k]) for k in reference)


def test_imagenet_offline_and_uncached_names_the_alternatives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args: object, **kwargs: object) -> None:  # the network is the edge that cannot run here
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsUnavailable) as caught:
        build_backbone("resnet50", "imagenet")
    message = str(caught.value)
    assert "--weights none" in message and "--weights PATH" in message and "lookalike model pull resnet50" in message


def test_weights_from_a_path(tmp_path: Path) -> None:
    torch.manual_seed(7)
    state = resnet50(weights=None).state_dict()
    torch.save(state, tmp_path / "r50.pth")
    loaded = build_backbone("resnet50", str(tmp_path / "r50.pth")).state_dict()
    assert torch.equal(loaded["fc.weight"], state["fc.weight"])


def test_cpu_recipe_trains_the_top_on_cached_trunk_outputs(split_tree: Path, tmp_path: Path) -> None:
    """The trunk stays as it was, the last stage and the head learn, and the metrics say where it started."""
    out = tmp_path / "cpu"
    config = TrainConfig(
        data=str(split_tree), out=str(out), arch="efficientnet_lite0", weights="none", recipe="cpu",
        epochs_head=2, epochs_finetune=3, lr_finetune=3e-3, image_size=64, views=2, workers=0, progress=False,
    )  # fmt: skip
    metrics = main(config)
    history = metrics["epochs"]
    assert [h["phase"] for h in history] == ["head"] * 2 + ["finetune"] * 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"P@10", "top3"} <= set(history[-1]) and "start_P@10" in metrics
    assert metrics["config"]["batch_size"] == 64 and metrics["config"]["image_size"] == 64
    start = build_backbone("efficientnet_lite0", "none", seed=0).state_dict()
    trained = load_checkpoint(out / "last.pt")
    assert trained["arch"] == "efficientnet_lite0" and trained["normalize"] == "l2"
    weights = trained["model"]
    assert torch.equal(weights["backbone.conv_stem.weight"], start["conv_stem.weight"])  # the trunk: frozen
    assert torch.equal(weights["backbone.blocks.5.0.conv_pw.weight"], start["blocks.5.0.conv_pw.weight"])
    assert not torch.equal(weights["backbone.blocks.6.0.conv_pw.weight"], start["blocks.6.0.conv_pw.weight"])
    assert not torch.equal(weights["backbone.classifier.weight"], start["classifier.weight"])
    assert (out / "curves.png").is_file() and (out / "best.pt").is_file()


def test_bad_recipe_and_resume_with_cpu_recipe_are_refused(split_tree: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected one of full, cpu"):
        main(TrainConfig(data=str(split_tree), out=str(tmp_path / "x"), **{**FAST, "recipe": "gpu"}))
    with pytest.raises(ValueError, match="--resume applies to --recipe full"):
        main(TrainConfig(data=str(split_tree), out=str(tmp_path / "x"), recipe="cpu", resume=True, weights="none"))


@pytest.mark.parametrize("recipe", ["full", "cpu"])
def test_best_pt_is_the_epoch_with_the_best_validation_p10(split_tree: Path, tmp_path: Path, recipe: str) -> None:
    out = tmp_path / recipe
    arch = {"full": {}, "cpu": {"arch": "efficientnet_lite0", "views": 2}}[recipe]
    config = TrainConfig(
        data=str(split_tree), out=str(out), weights="none", epochs_head=1, epochs_finetune=3,
        lr_head=3e-3, lr_finetune=3e-3, **{**FAST, "recipe": recipe, "image_size": 64, **arch},
    )  # fmt: skip
    metrics = main(config)
    history = metrics["epochs"]
    best_epoch = max(range(len(history)), key=lambda i: (history[i]["P@10"], -i))
    best = load_checkpoint(out / "best.pt")
    assert best["metrics"]["epoch"] == best_epoch + 1
    assert best["metrics"]["P@10"] == pytest.approx(max(h["P@10"] for h in history))
    assert metrics["best"]["P@10"] == best["metrics"]["P@10"] and "start_P@10" in metrics
    assert metrics["beats_start"] == (metrics["best"]["P@10"] > metrics["start_P@10"])


def test_a_run_that_never_beats_its_start_says_so(split_tree: Path, tmp_path: Path, caplog: Any) -> None:
    """Phase 1 trains only the head: the 1000-d embedding is the starting point's, so P@10 cannot rise."""
    config = TrainConfig(data=str(split_tree), out=str(tmp_path / "o"), weights="none", epochs_head=2,
                         epochs_finetune=0, **FAST)  # fmt: skip
    with caplog.at_level("WARNING"):
        metrics = main(config)
    assert metrics["beats_start"] is False
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["beats_start"] is False
    assert "no epoch beat the starting point" in caplog.text


def label_products(root: Path, per_product: int = 2) -> None:
    """A labels.csv naming products: every `per_product` training photos of a colour are one product."""
    lines = ["file,split,category,product_id"]
    for path in sorted((root / "train").rglob("*.png")):
        n = int(path.stem)
        lines.append(f"{path.relative_to(root)},train,{path.parent.name},{path.parent.name}-{n // per_product}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")


def test_the_cpu_recipe_learns_product_identity_where_the_data_names_products(split_tree: Path, tmp_path: Path) -> None:
    from ml.datasets import load_catalog

    label_products(split_tree)
    catalog = load_catalog(split_tree)
    assert catalog.split("train")[0].product == "blue-0" and catalog.split("validation")[0].product is None
    common = {
        "data": str(split_tree), "arch": "efficientnet_lite0", "weights": "none", "recipe": "cpu", "epochs_head": 1,
        "epochs_finetune": 2, "image_size": 64, "views": 1, "workers": 0, "progress": False,
    }  # fmt: skip
    with_identity = main(TrainConfig(out=str(tmp_path / "id"), **common))
    assert with_identity["identity_products"] == 4 * 8  # 16 training photos per colour, two per product
    assert main(TrainConfig(out=str(tmp_path / "cat"), identity_weight=0, **common))["identity_products"] == 0
    # Phase 2 trains on the category and the product losses together, and their sum goes down.
    finetune = [h for h in with_identity["epochs"] if h["phase"] == "finetune"]
    assert finetune[-1]["train_loss"] < finetune[0]["train_loss"]


def test_a_manifest_names_products_in_its_product_column(split_tree: Path, tmp_path: Path) -> None:
    from ml.datasets import load_catalog

    photos = sorted((split_tree / "train").rglob("*.png"))[:4]
    manifest = tmp_path / "catalog.csv"
    rows = [f"{p},{p.parent.name},train,{n // 2}" for n, p in enumerate(photos)]
    manifest.write_text("path,category,split,product\n" + "\n".join(rows) + "\n")
    assert [s.product for s in load_catalog(manifest).split("train")] == ["0", "0", "1", "1"]
