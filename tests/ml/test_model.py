"""The model (a backbone and its 1000-d head, the paper's), the deterministic untrained embedder, and exact
checkpoint round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.checkpoint import embedder_from_checkpoint, load_checkpoint, save_checkpoint
from ml.embedder import Embedder, Normalize, resolve_device
from ml.model import build_backbone, build_model
from tests.utils import images


def photos(n: int) -> list[Image.Image]:
    return [Image.fromarray(images.noise(seed, 80)) for seed in range(n)]


def test_shapes_fc_is_the_embedding_and_head_is_the_papers() -> None:
    model = build_model(num_classes=7).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        assert model.embed(x).shape == (2, 1000) and model(x).shape == (2, 7)
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1000, 256), (256, 64), (64, 7)]
    assert model.backbone.fc.out_features == 1000


def test_untrained_embedder_is_deterministic_across_processes_builds() -> None:
    first = Embedder.untrained(seed=0, image_size=64, device="cpu")
    second = Embedder.untrained(seed=0, image_size=64, device="cpu")
    other = Embedder.untrained(seed=1, image_size=64, device="cpu")
    batch = photos(3)
    assert np.array_equal(first.embed(batch), second.embed(batch))
    assert first.model_version == second.model_version != other.model_version
    assert not first.info.trained
    assert not np.allclose(first.embed(batch), other.embed(batch))


def test_embed_batches_and_empty_input() -> None:
    embedder = Embedder.untrained(image_size=64, device="cpu", batch_size=2)
    vectors = embedder.embed(photos(5))
    assert vectors.shape == (5, 1000) and vectors.dtype == np.float32 and np.isfinite(vectors).all()
    one_by_one = np.concatenate([embedder.embed([p]) for p in photos(5)])
    np.testing.assert_allclose(vectors, one_by_one, rtol=1e-4, atol=1e-4)
    assert embedder.embed([]).shape == (0, 1000)


def test_checkpoint_round_trip_reproduces_embeddings_exactly(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = build_model(num_classes=4, weights="none", seed=5)
    with torch.no_grad():  # make it differ from any seeded network
        model.backbone.fc.bias.add_(0.5)
    path = tmp_path / "model.pt"
    version = save_checkpoint(path, model, class_names=list("abcd"), image_size=64, weights="none")
    checkpoint = load_checkpoint(path)
    assert checkpoint["model_version"] == version and checkpoint["class_names"] == list("abcd")
    loaded = embedder_from_checkpoint(path, device="cpu")
    direct = Embedder(model.backbone, model_version=version, normalize=Normalize.l2, image_size=64, device="cpu")
    assert loaded.model_version == version and loaded.info.trained and loaded.info.arch == "resnet50"
    assert checkpoint["arch"] == "resnet50" and checkpoint["normalize"] == "l2"
    assert np.allclose(np.linalg.norm(loaded.embed(photos(2)), axis=1), 1, atol=1e-5)
    assert np.array_equal(loaded.embed(photos(3)), direct.embed(photos(3)))
    assert (
        save_checkpoint(tmp_path / "again.pt", model, class_names=list("abcd"), image_size=64, weights="none")
        == version
    )


def test_bad_choices_fail_with_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="imagenet, none"):
        build_backbone("resnet50", str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        resolve_device("tpu")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_the_index_knows_the_descriptor_sizes_without_torch() -> None:
    """backend.index repeats the sizes (the web app imports no torch); a collection is made with them."""
    from backend.index import base
    from ml import descriptors

    assert (base.LOOK_DIM, base.COPY_DIM) == (descriptors.LOOK_DIM, descriptors.COPY_DIM)
