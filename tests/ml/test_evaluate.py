"""Retrieval metrics by hand, and `lookalike evaluate` / `lookalike embed` on a generated set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.checkpoint import embedder_from_checkpoint, save_checkpoint
from ml.evaluate import colour_histogram, l2_normalize, main, retrieval_metrics
from ml.model import build_model
from tests.utils.cli import cli_runner


def test_retrieval_metrics_by_hand() -> None:
    # Points on a line; labels a a b a. Query 0 (a): neighbours 1 (a), 2 (b), 3 (a).
    features = np.array([[0.0], [1.0], [2.5], [4.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 0])
    m = retrieval_metrics(features, labels, ks=(1, 3))
    # Query 0: 1(a) 2(b) 3(a) -> P@1 1, P@3 2/3, AP@3 (1 + 2/3) / 2
    # Query 1: 0(a) 2(b) 3(a) -> P@1 1, P@3 2/3, AP@3 (1 + 2/3) / 2
    # Query 2 (b, no other b): P@1 0, P@3 0, AP 0
    # Query 3: 2(b) 1(a) 0(a) -> P@1 0, P@3 2/3, AP@3 (1/2 + 2/3) / 2
    assert m["P@1"] == pytest.approx(2 / 4)
    assert m["P@3"] == pytest.approx((2 / 3) * 3 / 4)
    assert m["mAP@3"] == pytest.approx(((5 / 6) * 2 + (7 / 12)) / 4)
    assert m["mAP@1"] == pytest.approx(2 / 4)


def test_l2_normalization_and_histogram(tmp_path: Path) -> None:
    assert np.allclose(np.linalg.norm(l2_normalize(np.array([[3.0, 4.0], [0.0, 2.0]])), axis=1), 1)
    from PIL import Image

    Image.new("RGB", (50, 40), (255, 0, 0)).save(tmp_path / "red.png")
    hist = colour_histogram(tmp_path / "red.png", 32)
    assert hist.shape == (512,) and hist.sum() == pytest.approx(1) and hist[7 * 64] == pytest.approx(1)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = build_model(4, "none", seed=3)
    path = tmp_path / "model" / "best.pt"
    save_checkpoint(path, model, class_names=["blue", "green", "red", "yellow"], image_size=32, weights="none")
    return path


def test_evaluate_writes_metrics_and_pictures(checkpoint: Path, split_tree: Path) -> None:
    result = main(model_path=checkpoint, data=split_tree, workers=0, progress=False)
    out = checkpoint.parent
    saved = json.loads((out / "eval.json").read_text())
    assert saved["photos"] == 20 and saved["split"] == "validation"
    assert set(saved["retrieval"]) == {"fine-tuned", "untrained", "colour-histogram"}
    assert set(saved["retrieval"]["fine-tuned"]) == {"raw", "l2"}
    # One colour per class: the histogram baseline separates them perfectly.
    assert saved["retrieval"]["colour-histogram"]["raw"]["P@1"] == pytest.approx(1.0)
    assert 0 <= result["classification"]["top1"] <= result["classification"]["top3"] <= 1
    for picture in ("confusion.png", "neighbours.png"):
        assert (out / picture).stat().st_size > 10_000


def test_evaluate_refuses_other_classes(checkpoint: Path, tmp_path: Path, split_tree: Path) -> None:
    (split_tree / "train" / "extra").mkdir()
    from tests.utils.colours import write_class_photos

    write_class_photos(split_tree / "train" / "extra", (0, 0, 0), 2, 1)
    with pytest.raises(ValueError, match="the model knows classes"):
        main(model_path=checkpoint, data=split_tree, workers=0, progress=False)


def test_embed_command_matches_the_embedder(checkpoint: Path, split_tree: Path, tmp_path: Path, app: object) -> None:
    (split_tree / "validation" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    runner = cli_runner(app)
    out = tmp_path / "vectors.npy"
    args = ["embed", "--model", str(checkpoint), str(split_tree / "validation"), "--out", str(out), "--workers", "0"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "embedded 20 photos" in result.output and "skipped 1 unreadable" in result.output
    vectors = np.load(out)
    meta = json.loads(out.with_suffix(".ids.json").read_text())
    assert vectors.shape == (20, 1000) and len(meta["ids"]) == 20 and meta["ids"][0] == "blue/000.png"
    from PIL import Image

    embedder = embedder_from_checkpoint(checkpoint, device="cpu")
    assert meta["model_version"] == embedder.model_version
    single = embedder.embed([Image.open(split_tree / "validation" / meta["ids"][7])])[0]
    np.testing.assert_allclose(vectors[7], single, rtol=1e-4, atol=1e-4)
    missing = runner.invoke(args=["embed", "--model", str(tmp_path / "nope.pt"), str(split_tree), "--out", str(out)])
    assert missing.exit_code == 2


def test_cli_train_reports_bad_data(tmp_path: Path, app: object) -> None:
    (tmp_path / "empty").mkdir()
    runner = cli_runner(app)
    result = runner.invoke(args=["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "o"),
                                 "--weights", "none"])  # fmt: skip
    assert result.exit_code == 1 and "no category folders" in result.output
    bad = runner.invoke(args=["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "tpu"])
    assert bad.exit_code == 2 and "'auto', 'cpu', 'cuda'" in bad.output


def test_a_built_in_model_alone_on_a_test_only_folder(tmp_path: Path) -> None:
    """`--model efficientnet_lite0-imagenet` with data holding only test/<category>/ and `--split test`."""
    import shutil

    from tests.utils.datasets import photos_of

    for category in ("shoes", "pants"):
        folder = tmp_path / "data" / "test" / category
        folder.mkdir(parents=True)
        for path in photos_of(category, 4):
            shutil.copy(path, folder / path.name)
    result = main(
        model_path="efficientnet_lite0-imagenet", data=tmp_path / "data", split="test", out=tmp_path / "e",
        workers=0, progress=False,
    )  # fmt: skip
    assert result["classification"] is None and result["photos"] == 8
    assert set(result["retrieval"]) == {"pretrained", "untrained", "colour-histogram"}
    pretrained, untrained = result["retrieval"]["pretrained"]["l2"], result["retrieval"]["untrained"]["l2"]
    assert pretrained["P@1"] >= 0.875 and pretrained["P@1"] > untrained["P@1"]  # shoes and pants, by look
    assert (tmp_path / "e" / "neighbours.png").is_file() and not (tmp_path / "e" / "confusion.png").exists()


def test_a_fine_tuned_checkpoint_is_compared_with_its_pretrained_start(tmp_path: Path, split_tree: Path) -> None:
    model = build_model(4, "imagenet", arch="efficientnet_lite0")
    path = tmp_path / "ft" / "best.pt"
    save_checkpoint(path, model, class_names=["blue", "green", "red", "yellow"], image_size=64, weights="imagenet")
    result = main(model_path=path, data=split_tree, workers=0, progress=False)
    assert set(result["retrieval"]) == {"fine-tuned", "pretrained", "untrained", "colour-histogram"}
    assert result["starting_point"] == "efficientnet_lite0-imagenet"
    # Unchanged weights: the fine-tuned entry is its starting point, measured the same way.
    assert result["retrieval"]["fine-tuned"] == result["retrieval"]["pretrained"]


def test_cli_evaluate_unknown_model_names_the_built_in_ones(app: object, split_tree: Path) -> None:
    runner = cli_runner(app)
    result = runner.invoke(args=["evaluate", "--model", "vgg16-imagenet", "--data", str(split_tree)])
    assert result.exit_code == 1 and "efficientnet_lite0-imagenet" in result.output
