"""Checkpoints carry everything needed to embed; their content hash is the model version."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from ml.backbones import get_arch, load_state_strict
from ml.embedder import Embedder, Normalize, Origin
from ml.model import LookalikeNet, build_model


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
    model: LookalikeNet,
    *,
    class_names: list[str],
    image_size: int,
    weights: str,
    normalize: Normalize = Normalize.l2,
    metrics: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """Write the model with its architecture, input size, normalization and weights origin; return its version."""
    arch = get_arch(model.arch)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = state_hash(state)
    payload = {
        "model": state,
        "model_version": version,
        "arch": arch.name,
        "class_names": list(class_names),
        "image_size": image_size,
        "mean": list(arch.mean),
        "std": list(arch.std),
        "normalize": Normalize(normalize).value,
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
    try:
        checkpoint: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a file torch cannot read at all
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} is not a Lookalike checkpoint")
    missing = {"model", "model_version", "class_names", "image_size"} - set(checkpoint)
    if missing:
        raise ValueError(f"{path} is not a Lookalike checkpoint: missing {', '.join(sorted(missing))}")
    # Checkpoints from before the backbone choice: ResNet50, raw vectors.
    checkpoint.setdefault("arch", "resnet50")
    checkpoint.setdefault("normalize", Normalize.raw.value)
    get_arch(checkpoint["arch"])
    return checkpoint


def model_from_checkpoint(checkpoint: dict[str, Any], origin: str = "checkpoint") -> LookalikeNet:
    model = build_model(len(checkpoint["class_names"]), "none", arch=checkpoint["arch"])
    load_state_strict(model, checkpoint["model"], checkpoint["arch"], origin)
    return model


def embedder_from_checkpoint(path: Path, *, device: str = "auto", batch_size: int = 32) -> Embedder:
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, str(path))
    arch = get_arch(checkpoint["arch"])
    return Embedder(
        model.backbone,
        model_version=checkpoint["model_version"],
        arch=arch.name,
        origin=Origin.fine_tuned,
        normalize=Normalize(checkpoint["normalize"]),
        image_size=int(checkpoint["image_size"]),
        mean=tuple(checkpoint.get("mean", arch.mean)),
        std=tuple(checkpoint.get("std", arch.std)),
        device=device,
        batch_size=batch_size,
    )
