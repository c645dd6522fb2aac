"""Two-phase fine-tuning (the paper's method): train the head on a frozen backbone, then fine-tune.

Two recipes: `full` is the paper's schedule (phase 2 unfreezes everything, small learning rate, every
epoch decodes and augments every photo: for a GPU); `cpu` (ml/train_cpu.py) caches the frozen trunk's
outputs and fine-tunes the last stage, so that it finishes on 2 CPU cores in minutes.

Layout after torchvision's references/classification/train.py: flat functions, a checkpoint
holding model, optimizer, scheduler, epoch and arguments, `--resume` to continue.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ml import train_cpu
from ml.backbones import get_arch
from ml.checkpoint import load_checkpoint, save_checkpoint, state_hash
from ml.datasets import Catalog, ImageDataset, collate_skipping, load_catalog
from ml.embedder import l2_rows, resolve_device
from ml.evaluate import retrieval_metrics
from ml.model import LookalikeNet, build_model
from ml.plots import plot_curves
from ml.presets import EvalPreset, TrainPreset

log = logging.getLogger(__name__)
PHASES = ("head", "finetune")


RECIPES = ("full", "cpu")
# What each recipe sets when an option is left unset (None).
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": {"epochs_head": 10, "epochs_finetune": 10, "lr_head": 1e-3, "lr_finetune": 1e-4, "batch_size": 32},
    # Measured on clothing-small (README): the last stage needs a real learning rate to move the embedding.
    "cpu": {"epochs_head": 8, "epochs_finetune": 12, "lr_head": 1e-3, "lr_finetune": 1e-3, "batch_size": 64},
}


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "efficientnet_lite0"
    weights: str = "imagenet"
    recipe: str = "cpu"
    epochs_head: int | None = None
    epochs_finetune: int | None = None
    lr_head: float | None = None
    lr_finetune: float | None = None
    weight_decay: float = 0.0
    batch_size: int | None = None
    image_size: int | None = None  # default: the architecture's own input size
    views: int = 3  # cpu recipe: cached views per training photo (eval crop, mirror, random crops)
    # cpu recipe: the weight of the product-identity loss where the data names products (labels.csv, a
    # product column, --from-catalog); 0 trains on categories alone.
    identity_weight: float = 1.0
    device: str = "auto"
    workers: int = 2
    seed: int = 0
    val_fraction: float = 0.1
    resume: bool = False
    progress: bool = True

    def resolved(self) -> TrainConfig:
        """A copy with every unset option taken from the recipe and the architecture; bad choices raise."""
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}: expected one of {', '.join(RECIPES)}")
        arch = get_arch(self.arch)
        values = asdict(self)
        for key, default in RECIPE_DEFAULTS[self.recipe].items():
            if values[key] is None:
                values[key] = default
        if values["image_size"] is None:
            values["image_size"] = arch.image_size
        if self.recipe == "cpu" and self.resume:
            raise ValueError("--resume applies to --recipe full; the cpu recipe starts over in minutes")
        if self.views < 1:
            raise ValueError("views must be at least 1")
        return TrainConfig(**values)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(
    catalog: Catalog, split: str, transform: Any, *, batch_size: int, workers: int, shuffle: bool, pin: bool
) -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(0)
    return DataLoader(
        ImageDataset(catalog.split(split), transform),
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=pin,
        persistent_workers=workers > 0,
        generator=generator,
    )


def set_phase(model: LookalikeNet, phase: str) -> list[nn.Parameter]:
    """Phase 'head': backbone and fc frozen (BatchNorm statistics too). Phase 'finetune': all trainable."""
    frozen = phase == "head"
    for parameter in model.backbone.parameters():
        parameter.requires_grad = not frozen
    return list((model.head if frozen else model).parameters())


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 3)) -> list[int]:
    k_max = min(max(ks), logits.shape[1])
    top = logits.topk(k_max, dim=1).indices
    hits = top.eq(labels[:, None])
    return [int(hits[:, : min(k, k_max)].any(dim=1).sum()) for k in ks]


def train_one_epoch(
    model: LookalikeNet,
    loader: DataLoader[Any],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    device: torch.device,
    *,
    phase: str,
    desc: str,
    progress: bool,
) -> dict[str, float]:
    model.train()
    if phase == "head":
        model.backbone.eval()  # frozen: keep its BatchNorm statistics as they are
    criterion = nn.CrossEntropyLoss()
    total_loss, seen, correct, dropped = 0.0, 0, 0, 0
    bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress, dynamic_ncols=True)
    for images, labels, _, skipped in bar:
        dropped += skipped
        if len(labels) == 0:
            continue
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=scaler is not None):
            logits = model(images)
            loss = criterion(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(labels)
        seen += len(labels)
        correct += topk_correct(logits.detach(), labels, (1,))[0]
        bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": total_loss / max(seen, 1), "train_top1": correct / max(seen, 1), "train_dropped": dropped}


@torch.inference_mode()
def evaluate(model: LookalikeNet, loader: DataLoader[Any], device: torch.device) -> dict[str, float]:
    """Validation loss, top-1/top-3, and P@10 of the L2-normalised 1000-d embeddings (what the index serves)."""
    model.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    total_loss, seen, top1, top3 = 0.0, 0, 0, 0
    embeddings, all_labels = [], []
    for images, labels, _, _ in loader:
        if len(labels) == 0:
            continue
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            embedding = model.embed(images)
            logits = model.head(embedding)
        total_loss += float(criterion(logits.float(), labels))
        c1, c3 = topk_correct(logits, labels)
        top1, top3, seen = top1 + c1, top3 + c3, seen + len(labels)
        embeddings.append(embedding.float().cpu().numpy())
        all_labels.append(labels.cpu().numpy())
    p10 = retrieval_metrics(l2_rows(np.concatenate(embeddings)), np.concatenate(all_labels), ks=(10,))["P@10"]
    return {
        "val_loss": total_loss / max(seen, 1),
        "top1": top1 / max(seen, 1),
        "top3": top3 / max(seen, 1),
        "P@10": p10,
    }


def better(row: dict[str, Any], best: float) -> bool:
    """Whether an epoch is the best so far: by validation P@10 (L2), the metric the index serves."""
    return float(row["P@10"]) > best


def make_optimizer(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def main(config: TrainConfig) -> dict[str, Any]:
    """Train; write best.pt, last.pt, metrics.json and curves.png under `config.out`. Returns the metrics."""
    config = config.resolved()
    out = Path(config.out)
    seed_everything(config.seed)
    device = resolve_device(config.device)
    catalog = load_catalog(Path(config.data), val_fraction=config.val_fraction, seed=config.seed)
    if catalog.skipped:
        log.warning("skipped while reading the dataset: %s", dict(catalog.skipped))
    val_split = "validation" if "validation" in catalog.splits else "test"
    model = build_model(len(catalog.class_names), config.weights, arch=config.arch, seed=config.seed)
    out.mkdir(parents=True, exist_ok=True)
    if config.recipe == "cpu":
        metrics = _main_cpu(model, catalog, val_split, config, out)
    else:
        metrics = _main_full(model, catalog, val_split, config, out, device)
    if metrics["beats_start"] is False:
        log.warning(no_gain_message(metrics))
    return metrics


def no_gain_message(metrics: dict[str, Any]) -> str:
    return (
        f"no epoch beat the starting point (validation P@10 {metrics['start_P@10']:.3f}, best epoch"
        f" {metrics['best']['P@10']:.3f}): best.pt embeds no better than the model it started from; try more"
        " epochs, another learning rate or more photos"
    )


def _main_cpu(model: LookalikeNet, catalog: Catalog, val_split: str, config: TrainConfig, out: Path) -> dict[str, Any]:
    if resolve_device(config.device).type != "cpu":
        log.info("the cpu recipe runs on the CPU; --recipe full uses the GPU")
    started = time.monotonic()
    best_p10 = -1.0
    extra_metrics: dict[str, Any] = {}

    def on_epoch(history: list[dict[str, Any]], extra: dict[str, Any]) -> None:
        nonlocal best_p10
        extra_metrics.update(extra)
        row = history[-1]
        row["best"] = better(row, best_p10)
        best_p10 = max(best_p10, row["P@10"])
        _save(out, model, history, catalog, config)
        write_metrics(out, history, catalog, config, started, extra_metrics)

    history = train_cpu.run(model, catalog, val_split, config, on_epoch=on_epoch)
    return write_metrics(out, history, catalog, config, started, extra_metrics)


def _save(
    out: Path,
    model: LookalikeNet,
    history: list[dict[str, Any]],
    catalog: Catalog,
    config: TrainConfig,
    state: dict[str, Any] | None = None,
) -> None:
    """last.pt after every epoch, best.pt when the epoch has the best validation P@10 so far."""
    row = history[-1]
    metrics = {"top1": row["top1"], "top3": row["top3"], "val_loss": row["val_loss"], "epoch": len(history)}
    if "P@10" in row:
        metrics["P@10"] = row["P@10"]
    save_checkpoint(
        out / "last.pt", model, metrics=metrics, extra=state or {"history": history}, **meta(catalog, config)
    )
    if row["best"]:
        save_checkpoint(out / "best.pt", model, metrics=metrics, extra={"history": history}, **meta(catalog, config))


def _main_full(
    model: LookalikeNet, catalog: Catalog, val_split: str, config: TrainConfig, out: Path, device: torch.device
) -> dict[str, Any]:
    assert config.image_size and config.batch_size and config.epochs_head is not None
    assert config.epochs_finetune is not None and config.lr_head and config.lr_finetune
    arch = get_arch(config.arch)
    pin = device.type == "cuda"
    train_loader = make_loader(
        catalog,
        "train",
        TrainPreset(config.image_size, arch.mean, arch.std),
        batch_size=config.batch_size,
        workers=config.workers,
        shuffle=True,
        pin=pin,
    )
    val_loader = make_loader(
        catalog,
        val_split,
        EvalPreset(config.image_size, arch.mean, arch.std),
        batch_size=config.batch_size,
        workers=config.workers,
        shuffle=False,
        pin=pin,
    )

    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    history: list[dict[str, Any]] = []
    start_phase, start_epoch, resume_state = 0, 0, None
    last_path = out / "last.pt"
    if config.resume:
        if not last_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {last_path}")
        resume_state = load_checkpoint(last_path)
        model.load_state_dict(resume_state["model"])
        history = list(resume_state["history"])
        start_phase, start_epoch = PHASES.index(resume_state["phase"]), int(resume_state["epoch"]) + 1
        log.info("resuming after phase %s epoch %d", resume_state["phase"], start_epoch)

    best_p10 = max((h["P@10"] for h in history), default=-1.0)
    start_p10 = evaluate(model, val_loader, device)["P@10"] if not history else None
    if start_p10 is not None:
        log.info("starting point: validation P@10 %.3f (L2)", start_p10)
    extra = {"start_P@10": start_p10} if start_p10 is not None else {}
    if resume_state is not None and "start_P@10" in resume_state:
        extra = {"start_P@10": resume_state["start_P@10"]}
    epochs = {"head": config.epochs_head, "finetune": config.epochs_finetune}
    lrs = {"head": config.lr_head, "finetune": config.lr_finetune}
    started = time.monotonic() - sum(h["seconds"] for h in history)
    for phase_index in range(start_phase, len(PHASES)):
        phase = PHASES[phase_index]
        if epochs[phase] <= 0:
            continue
        optimizer = make_optimizer(set_phase(model, phase), lrs[phase], config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs[phase])
        scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" else None
        first_epoch = 0
        if resume_state is not None and phase_index == start_phase:
            if start_epoch >= epochs[phase]:
                continue
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
            first_epoch = start_epoch
        for epoch in range(first_epoch, epochs[phase]):
            tick = time.monotonic()
            desc = f"{phase} {epoch + 1}/{epochs[phase]}"
            row: dict[str, Any] = {"phase": phase, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            row |= train_one_epoch(
                model, train_loader, optimizer, scaler, device, phase=phase, desc=desc, progress=config.progress
            )
            row |= evaluate(model, val_loader, device)
            scheduler.step()
            row["seconds"] = time.monotonic() - tick
            history.append(row)
            log.info(
                "%s: train loss %.4f, val loss %.4f, top-1 %.3f, top-3 %.3f, P@10 %.3f (%.0f s)",
                desc,
                row["train_loss"],
                row["val_loss"],
                row["top1"],
                row["top3"],
                row["P@10"],
                row["seconds"],
            )
            row["model_version"] = state_hash(model.state_dict())
            row["best"] = better(row, best_p10)
            best_p10 = max(best_p10, row["P@10"])
            state = {
                **extra,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "phase": phase,
                "epoch": epoch,
                "history": history,
                "args": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            }
            _save(out, model, history, catalog, config, state)
            write_metrics(out, history, catalog, config, started, extra)
    return write_metrics(out, history, catalog, config, started, extra)


def meta(catalog: Catalog, config: TrainConfig) -> dict[str, Any]:
    """What every checkpoint carries besides the weights, for embedding without the training data."""
    return {"class_names": catalog.class_names, "image_size": config.image_size, "weights": config.weights}


def write_metrics(
    out: Path,
    history: list[dict[str, Any]],
    catalog: Catalog,
    config: TrainConfig,
    started: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    best = max(history, key=lambda h: h["P@10"], default=None)
    start = (extra or {}).get("start_P@10")
    beats = None if best is None or start is None else bool(best["P@10"] > start)
    metrics = {
        "beats_start": beats,
        "class_names": catalog.class_names,
        "samples": {name: len(samples) for name, samples in catalog.splits.items()},
        "skipped": dict(catalog.skipped),
        "config": {k: v for k, v in asdict(config).items() if k != "progress"},
        "epochs": history,
        "best": best,
        "seconds": time.monotonic() - started,
        **(extra or {}),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if history:
        plot_curves(history, out / "curves.png")
    return metrics
