"""Checkpoints carry everything needed to embed; their content hash is the model version."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ml.embedder import Embedder
from ml.model import build_model
from ml.presets import IMAGENET_MEAN, IMAGENET_STD


def state_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """A hash of the weights alone, so that the same weights give the same version wherever saved."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def save_checkpoint(
    path: Path,
    model: torch.nn.Module,
    *,
    class_names: list[str],
    image_size: int,
    weights: str,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = state_hash(state)
    payload = {
        "model": state,
        "model_version": version,
        "class_names": list(class_names),
        "image_size": image_size,
        "mean": list(IMAGENET_MEAN),
        "std": list(IMAGENET_STD),
        "weights": weights,
        "metrics": metrics or {},
        **(extra or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    torch.save(payload, tmp)
    tmp.replace(path)
    return version


def load_checkpoint(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"model", "model_version", "class_names", "image_size"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path} is not a Lookalike checkpoint: missing {', '.join(sorted(missing))}")
    return checkpoint


def embedder_from_checkpoint(path: Path, *, device: str = "auto", batch_size: int = 32) -> Embedder:
    checkpoint = load_checkpoint(path)
    model = build_model(len(checkpoint["class_names"]), "none")
    model.load_state_dict(checkpoint["model"])
    return Embedder(
        model.backbone,
        model_version=checkpoint["model_version"],
        trained=True,
        image_size=int(checkpoint["image_size"]),
        mean=tuple(checkpoint.get("mean", IMAGENET_MEAN)),
        std=tuple(checkpoint.get("std", IMAGENET_STD)),
        device=device,
        batch_size=batch_size,
    )
