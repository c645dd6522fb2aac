"""The `cpu` recipe: the paper's two phases, shaped to finish on 2 CPU cores in minutes.

Most of a forward pass is the early stages, and fine-tuning them barely moves a 1000-d ImageNet
embedding on a small catalog. So the backbone is split (`Arch.split`): the frozen trunk runs once per
photo and view (the eval crop, its mirror image, and random crops) and its outputs are kept in
memory; the head (phase 1) and then the last stage, the head conv and the classifier layer together
with the head (phase 2) train on those cached activations. An epoch costs seconds instead of minutes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ml.backbones import get_arch
from ml.checkpoint import state_hash
from ml.datasets import Catalog, ImageDataset, Sample, collate_skipping
from ml.embedder import l2_rows
from ml.evaluate import retrieval_metrics
from ml.model import LookalikeNet
from ml.presets import EvalPreset, TrainPreset

log = logging.getLogger(__name__)


@dataclass
class Cached:
    """Trunk outputs: `features[v, i]` is view v of photo i (view 0 is the eval crop)."""

    features: torch.Tensor  # float16, (views, n, C, H, W)
    labels: torch.Tensor
    kept: list[int] | None = None  # positions in the samples of the photos that decoded


class ProductProxies(nn.Module):
    """Product identity beside the category head: one learned proxy per product with two or more training
    photos, and a normalised-softmax loss (cosine to every proxy, scaled) that pulls a photo's 1000-d embedding
    towards its own product's proxy and away from the others'."""

    def __init__(self, products: int, dim: int = 1000, scale: float = 16.0) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(products, dim) * 0.01)
        self.scale = scale

    def forward(self, embeddings: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = targets >= 0
        if not bool(known.any()):
            return embeddings.sum() * 0.0
        cosine = nn.functional.normalize(embeddings[known], dim=1) @ nn.functional.normalize(self.proxies, dim=1).T
        return nn.functional.cross_entropy(self.scale * cosine, targets[known])


def product_targets(samples: list[Sample], kept: list[int]) -> tuple[torch.Tensor, int]:
    """Per kept photo, the index of its product among those with 2+ photos here (-1 for the others)."""
    names = [samples[i].product for i in kept]
    counts: dict[str, int] = {}
    for name in names:
        if name is not None:
            counts[name] = counts.get(name, 0) + 1
    index = {name: i for i, name in enumerate(sorted(n for n, c in counts.items() if c >= 2))}
    return torch.tensor([index.get(name, -1) if name is not None else -1 for name in names]), len(index)


class _Mirrored:
    def __init__(self, preset: EvalPreset) -> None:
        self.preset = preset

    def __call__(self, image: Any) -> torch.Tensor:
        return self.preset(image).flip(-1)


@torch.inference_mode()
def cache_trunk(
    trunk: nn.Module,
    samples: list[Sample],
    transforms: list[Any],
    *,
    batch_size: int,
    workers: int,
    desc: str,
    progress: bool,
) -> Cached:
    """Run the frozen trunk over every sample once per transform; photos that fail to decode are left out."""
    trunk.eval()
    views: list[torch.Tensor] = []
    kept_labels: torch.Tensor | None = None
    kept_indices: list[int] | None = None
    for v, transform in enumerate(transforms):
        loader = DataLoader(
            ImageDataset(samples, transform), batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping
        )
        chunks, labels, indices = [], [], []
        bar = tqdm(loader, desc=f"{desc} view {v + 1}/{len(transforms)}", unit="batch", disable=not progress)
        for batch in bar:
            if batch.indices:
                x = batch.images.contiguous(memory_format=torch.channels_last)
                chunks.append(trunk(x).to(torch.float16).contiguous())
                labels.append(batch.labels)
                indices.extend(batch.indices)
        if kept_indices is not None and indices != kept_indices:
            raise RuntimeError("a photo decoded in one view and not in another")
        kept_indices = indices
        kept_labels = torch.cat(labels)
        views.append(torch.cat(chunks))
    assert kept_labels is not None
    return Cached(torch.stack(views), kept_labels, kept_indices)


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return list(order.split(batch_size))


def _topk_hits(logits: torch.Tensor, labels: torch.Tensor, k: int) -> int:
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return int(top.eq(labels[:, None]).any(dim=1).sum())


@torch.inference_mode()
def evaluate_cached(top: nn.Module, head: nn.Module, cached: Cached, batch_size: int) -> dict[str, float]:
    """Validation loss, top-1/top-3 and P@10 (L2) from the cached eval view."""
    top.eval()
    head.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    features = cached.features[0]
    embeddings, loss, top1, top3 = [], 0.0, 0, 0
    for idx in _batches(len(features), batch_size, None):
        emb = top(features[idx].float())
        logits = head(emb)
        labels = cached.labels[idx]
        loss += float(criterion(logits, labels))
        top1 += _topk_hits(logits, labels, 1)
        top3 += _topk_hits(logits, labels, 3)
        embeddings.append(emb.numpy())
    n = max(len(features), 1)
    vectors = np.concatenate(embeddings)
    p10 = retrieval_metrics(l2_rows(vectors), cached.labels.numpy(), ks=(10,))["P@10"]
    return {"val_loss": loss / n, "top1": top1 / n, "top3": top3 / n, "P@10": p10}


def train_epoch(
    top: nn.Module,
    head: nn.Module,
    cached: Cached,
    optimizer: torch.optim.Optimizer,
    *,
    phase: str,
    batch_size: int,
    generator: torch.Generator,
    desc: str,
    progress: bool,
    identity: tuple[ProductProxies, torch.Tensor, float] | None = None,
) -> dict[str, float]:
    """One pass over the photos, each seen in one of its cached views drawn at random; with `identity`
    (proxies, each photo's product target, weight), the product loss is added to the category loss."""
    criterion = nn.CrossEntropyLoss()
    top.train(phase == "finetune")
    head.train()
    views, n = cached.features.shape[0], cached.features.shape[1]
    total, seen, correct = 0.0, 0, 0
    batches = _batches(n, batch_size, generator)
    bar = tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress, dynamic_ncols=True)
    for idx in bar:
        view = torch.randint(views, (len(idx),), generator=generator)
        x = cached.features[view, idx].float()
        labels = cached.labels[idx]
        if phase == "head":
            with torch.no_grad():
                emb = top(x)
        else:
            emb = top(x)
        logits = head(emb)
        loss = criterion(logits, labels)
        if identity is not None and phase == "finetune":
            proxies, targets, weight = identity
            loss = loss + weight * proxies(emb, targets[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(idx)
        seen += len(idx)
        correct += _topk_hits(logits.detach(), labels, 1)
        bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": total / max(seen, 1), "train_top1": correct / max(seen, 1), "train_dropped": 0}


def run(
    model: LookalikeNet,
    catalog: Catalog,
    val_split: str,
    config: Any,
    *,
    on_epoch: Callable[[list[dict[str, Any]], dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Train `model` in place with the cpu recipe; checkpoints and metrics through `on_epoch(history, ...)`."""
    arch = get_arch(model.arch)
    trunk, top = arch.split(model.backbone)
    for parameter in trunk.parameters():
        parameter.requires_grad = False
    model.backbone = model.backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    size = config.image_size
    eval_preset = EvalPreset(size, arch.mean, arch.std)
    crop = TrainPreset(size, arch.mean, arch.std, scale=(0.35, 1.0))
    transforms: list[Any] = [eval_preset, _Mirrored(eval_preset)] + [crop] * max(config.views - 2, 0)
    common = {"batch_size": config.batch_size, "workers": config.workers, "progress": config.progress}
    tick = time.monotonic()
    train = cache_trunk(trunk, catalog.split("train"), transforms[: config.views], desc="cache train", **common)
    val = cache_trunk(trunk, catalog.split(val_split), [eval_preset], desc="cache validation", **common)
    cache_seconds = time.monotonic() - tick
    log.info(
        "cached trunk outputs %s for %d train photos x %d views and %d validation photos in %.0f s",
        tuple(train.features.shape[2:]),
        train.features.shape[1],
        train.features.shape[0],
        val.features.shape[1],
        cache_seconds,
    )
    generator = torch.Generator().manual_seed(config.seed)
    identity = None
    assert train.kept is not None
    targets, n_products = product_targets(catalog.split("train"), train.kept)
    if n_products and config.identity_weight > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            proxies = ProductProxies(n_products)
        identity = (proxies, targets, float(config.identity_weight))
        log.info(
            "product identity: %d products with 2+ training photos (%d photos), weight %.2f",
            n_products,
            int((targets >= 0).sum()),
            config.identity_weight,
        )
    history: list[dict[str, Any]] = []
    start_metrics = evaluate_cached(top, model.head, val, config.batch_size)
    log.info("starting point: validation P@10 %.3f (L2)", start_metrics["P@10"])
    phases = [
        ("head", config.epochs_head, config.lr_head, list(model.head.parameters())),
        (
            "finetune",
            config.epochs_finetune,
            config.lr_finetune,
            [*top.parameters(), *model.head.parameters(), *(identity[0].parameters() if identity else [])],
        ),
    ]
    for phase, epochs, lr, params in phases:
        if epochs <= 0:
            continue
        for parameter in top.parameters():
            parameter.requires_grad = phase == "finetune"
        optimizer = torch.optim.Adam(params, lr=lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        for epoch in range(epochs):
            tick = time.monotonic()
            desc = f"{phase} {epoch + 1}/{epochs}"
            row: dict[str, Any] = {"phase": phase, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"]}
            row |= train_epoch(
                top,
                model.head,
                train,
                optimizer,
                phase=phase,
                batch_size=config.batch_size,
                generator=generator,
                desc=desc,
                progress=config.progress,
                identity=identity,
            )
            row |= evaluate_cached(top, model.head, val, config.batch_size)
            scheduler.step()
            row["seconds"] = time.monotonic() - tick + (cache_seconds if not history else 0.0)
            row["model_version"] = state_hash(model.state_dict())
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
            on_epoch(history, {"start_P@10": start_metrics["P@10"], "identity_products": n_products if identity else 0})
    return history
