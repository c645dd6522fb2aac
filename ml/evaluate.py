"""Evaluate a checkpoint or a built-in model: classification accuracy, and retrieval against baselines.

Retrieval: every photo of the split queries all the others (leave-one-out); relevant means
same category. Baselines measured in the same run: the fine-tuned model's own ImageNet starting
point (`pretrained`), the same architecture untrained, and a colour histogram.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader
from tqdm import tqdm

from ml.backbones import build_backbone, get_arch, imagenet_available
from ml.checkpoint import load_checkpoint, model_from_checkpoint
from ml.datasets import ImageDataset, Sample, collate_skipping, load_catalog
from ml.descriptors import FeatureTap, kind_vectors, look_vectors
from ml.embedder import l2_rows, resolve_device
from ml.look_eval import (
    centre_lab,
    colour_difference,
    colour_references,
    distances,
    look_order,
    nearest,
    order_metrics,
)
from ml.plots import plot_confusion, plot_neighbours
from ml.presets import EvalPreset, to_rgb
from ml.pretrained import builtin_arch, builtin_names, pretrained_embedder, starting_point
from ml.versions import DEFAULT_LOOK, LOOK_CANDIDATES, LOOK_EXPANSION


def retrieval_metrics(features: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """P@k and mAP@k by Euclidean distance, each photo querying all others (itself excluded).

    AP@k = sum_{i<=k} P@i * rel_i / min(k, R), with R the number of other photos of its category.
    """
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(labels)
    n, k_max = len(x), min(max(ks), len(x) - 1)
    relevant_total = torch.bincount(y, minlength=int(y.max()) + 1)[y] - 1
    precision = {k: 0.0 for k in ks}
    average_precision = {k: 0.0 for k in ks}
    for start in range(0, n, 1024):
        chunk = torch.cdist(x[start : start + 1024], x)
        rows = torch.arange(len(chunk))
        chunk[rows, rows + start] = float("inf")  # the query is not its own neighbour
        order = chunk.topk(k_max, dim=1, largest=False).indices
        rel = (y[order] == y[start : start + 1024, None]).float()
        hits = rel.cumsum(dim=1)
        ranks = torch.arange(1, k_max + 1, dtype=torch.float32)
        for k in ks:
            kk = min(k, k_max)
            precision[k] += float((hits[:, kk - 1] / kk).sum())
            denominator = torch.clamp(torch.minimum(relevant_total[start : start + 1024], torch.tensor(kk)), min=1)
            ap = ((hits[:, :kk] / ranks[:kk]) * rel[:, :kk]).sum(dim=1) / denominator
            average_precision[k] += float(ap.sum())
    out = {f"P@{k}": precision[k] / n for k in ks}
    out |= {f"mAP@{k}": average_precision[k] / n for k in ks}
    return out


l2_normalize = l2_rows  # the embedder's own normalization, so evaluation measures what the index holds


def colour_histogram(path: Path, image_size: int, bins: int = 8) -> np.ndarray:
    """A bins^3 RGB histogram of the same centre crop the networks see, summing to 1."""
    with Image.open(path) as image:
        rgb = to_rgb(image)
        scale = round(image_size * 256 / 224) / min(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))))
        left, top = (rgb.width - image_size) // 2, (rgb.height - image_size) // 2
        pixels = np.asarray(rgb.crop((left, top, left + image_size, top + image_size))).reshape(-1, 3)
    quantized = (pixels.astype(np.int64) * bins) // 256
    codes = quantized[:, 0] * bins * bins + quantized[:, 1] * bins + quantized[:, 2]
    hist = np.bincount(codes, minlength=bins**3).astype(np.float32)
    return hist / hist.sum()


@torch.inference_mode()
def run_network(
    network: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]],
    samples: list[Sample],
    preset: EvalPreset,
    device: torch.device,
    *,
    batch_size: int,
    workers: int,
    desc: str,
    progress: bool,
    observe: Callable[[torch.Tensor], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
    """Embeddings (and logits, when the network has a head) for every decodable sample; `observe(images)` runs
    after each batch's forward pass (the look reads the feature maps that pass left in a FeatureTap)."""
    loader = DataLoader(
        ImageDataset(samples, preset), batch_size=batch_size, num_workers=workers, collate_fn=collate_skipping
    )
    embeddings, logits, kept = [], [], []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, disable=not progress):
        if batch.indices:
            images = batch.images.to(device)
            emb, out = network(images)
            if observe is not None:
                observe(images)
            embeddings.append(emb.float().cpu().numpy())
            if out is not None:
                logits.append(out.float().cpu().numpy())
            kept.extend(batch.indices)
    return np.concatenate(embeddings), (np.concatenate(logits) if logits else None), kept


@dataclass
class Subject:
    """What is evaluated: a checkpoint (with its head) or a built-in pretrained model (embedding only)."""

    name: str
    model_version: str
    arch: str
    image_size: int
    normalize: str
    network: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    class_names: list[str] | None  # None: no classifier to score
    starting_point: str | None  # the built-in model a checkpoint was fine-tuned from
    backbone: torch.nn.Module  # what the service embeds with: the 1000-d output, and the look's feature maps


def load_subject(model: str | Path, device: torch.device) -> Subject:
    """`model` is a checkpoint path or a built-in name such as efficientnet_lite0-imagenet."""
    if builtin_arch(str(model)) is not None:
        embedder = pretrained_embedder(str(model), device=str(device))
        net = embedder.network

        def pretrained(x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return net(x), None

        info = embedder.info
        return Subject(str(model), info.model_version, info.arch, info.image_size, info.normalize.value,
                       pretrained, None, None, net)  # fmt: skip
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(
            f"{model} is neither a checkpoint file nor a built-in model ({', '.join(builtin_names())})"
        )
    checkpoint = load_checkpoint(path)
    trained = model_from_checkpoint(checkpoint, str(path)).eval().to(device)

    def fine_tuned(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = trained.embed(x)
        return emb, trained.head(emb)

    start = starting_point(checkpoint)
    return Subject(str(path), checkpoint["model_version"], checkpoint["arch"], int(checkpoint["image_size"]),
                   checkpoint["normalize"], fine_tuned, list(checkpoint["class_names"]), start,
                   trained.backbone)  # fmt: skip


def both(features: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    return {"raw": retrieval_metrics(features, labels), "l2": retrieval_metrics(l2_normalize(features), labels)}


def main(
    *,
    model_path: str | Path,
    data: Path,
    split: str = "validation",
    out: Path | None = None,
    device: str = "auto",
    batch_size: int = 64,
    workers: int = 2,
    grid_queries: int = 6,
    grid_neighbours: int = 6,
    progress: bool = True,
    looks: tuple[float, ...] = (0.0, DEFAULT_LOOK, 1.0),
    look_candidates: int = LOOK_CANDIDATES,
    look_expansion: int = LOOK_EXPANSION,
) -> dict[str, Any]:
    """Evaluate; write eval.json, confusion.png (checkpoints) and neighbours.png into `out`.

    `out` defaults to the checkpoint's folder, or eval-<name>/ for a built-in model.
    """
    started = time.monotonic()
    dev = resolve_device(device)
    subject = load_subject(model_path, dev)
    if out is None:
        out = Path(model_path).parent if subject.class_names is not None else Path(f"eval-{subject.name}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(data)
    if subject.class_names is not None and catalog.class_names != subject.class_names:
        raise ValueError(f"the model knows classes {subject.class_names}, the data has {catalog.class_names}")
    class_names = catalog.class_names
    samples = (
        [sample for name in catalog.splits for sample in catalog.splits[name]]
        if split == "all"
        else catalog.split(split)
    )
    arch = get_arch(subject.arch)
    preset = EvalPreset(subject.image_size, arch.mean, arch.std)
    common: dict[str, Any] = {"batch_size": batch_size, "workers": workers, "progress": progress}
    own = "fine-tuned" if subject.class_names is not None else "pretrained"
    # The look vectors come from the same forward pass, as in the service (Embedder.describe).
    tap = FeatureTap(subject.backbone, subject.arch)
    mean = torch.tensor(preset.mean).view(1, -1, 1, 1)
    std = torch.tensor(preset.std).view(1, -1, 1, 1)
    look_parts: list[np.ndarray] = []
    kind_parts: list[np.ndarray] = []

    def keep_look(images: torch.Tensor) -> None:
        mid, last = tap.take()
        look_parts.append(look_vectors(images.cpu() * std + mean, mid, last))
        kind_parts.append(kind_vectors(last))

    emb, logits, kept = run_network(subject.network, samples, preset, dev, desc=own, observe=keep_look, **common)
    looks_of_kept = np.concatenate(look_parts)
    kinds_of_kept = np.concatenate(kind_parts)
    retrieval: dict[str, Any] = {own: both(emb, np.array([samples[i].label for i in kept]))}
    baselines: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, None]]] = {}
    if subject.starting_point is not None and imagenet_available(subject.arch):
        start = pretrained_embedder(subject.starting_point, device=str(dev)).network
        baselines["pretrained"] = lambda x: (start(x), None)
    untrained = build_backbone(subject.arch, "none", seed=0).eval().to(dev)
    baselines["untrained"] = lambda x: (untrained(x), None)
    for name, network in baselines.items():
        features, _, base_kept = run_network(network, samples, preset, dev, desc=name, **common)
        assert base_kept == kept, "every pass decodes the same photos"
        retrieval[name] = features
    kept_samples = [samples[i] for i in kept]
    labels = np.array([s.label for s in kept_samples])
    baseline_features = {name: retrieval[name] for name in baselines}
    for name in baselines:
        retrieval[name] = both(retrieval[name], labels)
    hist = np.stack(
        [
            colour_histogram(s.path, subject.image_size)
            for s in tqdm(kept_samples, desc="histogram", leave=False, disable=not progress)
        ]
    )
    retrieval["colour-histogram"] = both(hist, labels)
    served = l2_normalize(emb) if subject.normalize == "l2" else emb
    look = evaluate_look(
        served, looks_of_kept, kept_samples, labels, {**baseline_features, "colour-histogram": hist},
        kinds=kinds_of_kept, looks=looks, candidates=look_candidates, expansion=look_expansion, out=out,
        class_names=class_names, grid_rows=grid_queries, grid_neighbours=grid_neighbours,
    )  # fmt: skip

    classification = None
    n_classes = len(class_names)
    if logits is not None:
        top = np.argsort(-logits, axis=1)
        classification = {
            "top1": float((top[:, 0] == labels).mean()),
            "top3": float((top[:, : min(3, n_classes)] == labels[:, None]).any(axis=1).mean()),
        }
        confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
        np.add.at(confusion, (labels, top[:, 0]), 1)
        plot_confusion(confusion, class_names, out / "confusion.png", f"{split}: top-1 {classification['top1']:.3f}")
    result = {
        "model": str(model_path),
        "model_version": subject.model_version,
        "arch": subject.arch,
        "normalize": subject.normalize,
        "starting_point": subject.starting_point,
        "data": str(data),
        "split": split,
        "photos": len(kept_samples),
        "skipped": len(samples) - len(kept_samples),
        "classification": classification,
        "retrieval": retrieval,
        "look": look,
        "chance": {
            "top1": 1 / n_classes,
            "P@10 (class share)": float(np.mean(np.bincount(labels)[labels] - 1) / max(len(labels) - 1, 1)),
        },
        "seconds": time.monotonic() - started,
    }
    (out / "eval.json").write_text(json.dumps(result, indent=2))
    plot_neighbours(
        neighbour_rows(served, kept_samples, class_names, grid_queries, grid_neighbours),
        out / "neighbours.png",
        f"nearest photos, Euclidean distance of the {subject.normalize} 1000-d embeddings ({subject.model_version})",
    )
    result["out"] = str(out)
    return result


def evaluate_look(
    embedding: np.ndarray,
    look: np.ndarray,
    samples: list[Sample],
    labels: np.ndarray,
    baselines: dict[str, np.ndarray],
    *,
    kinds: np.ndarray | None = None,
    looks: tuple[float, ...],
    candidates: int,
    expansion: int = 0,
    out: Path,
    class_names: list[str],
    grid_rows: int = 6,
    grid_neighbours: int = 6,
) -> dict[str, Any]:
    """The served ranking at each `look` weight: category P@10, colour difference of the 10 nearest, and where the
    data names products (a labels.csv) the same-product P@1 and mAP@10; beside the baselines' and the colour
    references. `embedding` is the served 1000-d vector and `look` the look vector of each of `samples`."""
    labs = np.stack([centre_lab(s.path) for s in samples])
    names = [s.product for s in samples]
    products = np.unique(np.array(names), return_inverse=True)[1] if None not in names else None

    def scores(order: np.ndarray) -> dict[str, float]:
        row = {"P@10": order_metrics(order, labels)["P@10"], "colour dE": colour_difference(order, labs)}
        if products is not None:
            same = order_metrics(order, products)
            row |= {"product P@1": same["P@1"], "product mAP@10": same["mAP@10"]}
        return row

    orders = {w: look_order(embedding, look, w, candidates, kind=kinds, expansion=expansion) for w in looks}
    by_weight = {f"{w:g}": scores(order) for w, order in orders.items()}
    others = {name: scores(nearest(distances(f), 10)) for name, f in baselines.items()}
    pictures = {}
    for w, order in orders.items():
        if w == 0:
            continue  # neighbours.png shows the plain ranking
        name = f"neighbours-look-{w:g}.png"
        plot_neighbours(
            order_rows(order, samples, labels, labs, class_names, grid_rows, grid_neighbours),
            out / name,
            f"nearest photos at look={w:g} (among the {candidates} nearest by the kind vector), with their colour dE",
        )
        pictures[f"{w:g}"] = name
    return {
        "candidates": candidates,
        "expansion": expansion,
        "candidates by": "1000-d vector" if kinds is None else "kind vector",
        "pictures": pictures,
        "by_look": by_weight,
        "baselines": others,
        "colour dE references": colour_references(labels, labs),
    }


def order_rows(
    order: np.ndarray,
    samples: list[Sample],
    labels: np.ndarray,
    labs: np.ndarray,
    class_names: list[str],
    queries: int,
    k: int,
) -> list[dict[str, Any]]:
    """The same queries as neighbour_rows, with the neighbours of a given ranking."""
    return [
        {
            "path": samples[q].path,
            "category": class_names[labels[q]],
            "neighbours": [
                {
                    "path": samples[j].path,
                    "distance": float(np.linalg.norm(labs[j] - labs[q])),
                    "category": class_names[labels[j]],
                    "same": bool(labels[j] == labels[q]),
                }
                for j in order[q][:k]
            ],
        }
        for q in pick_grid_queries([int(label) for label in labels], queries)
    ]


def pick_grid_queries(labels: list[int], queries: int) -> list[int]:
    """One photo per class where possible (spread over the split, seeded): the rows of a neighbour grid."""
    rng = np.random.default_rng(0)
    by_class: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    return [int(rng.choice(idx)) for _, idx in sorted(by_class.items())][:queries]


def neighbour_rows(
    features: np.ndarray, samples: list[Sample], class_names: list[str], queries: int, k: int
) -> list[dict[str, Any]]:
    """One query per class where possible (spread over the split), with its k nearest other photos."""
    rows = []
    for q in pick_grid_queries([s.label for s in samples], queries):
        distances = np.linalg.norm(features - features[q], axis=1)
        distances[q] = np.inf
        nearest = np.argsort(distances)[:k]
        rows.append(
            {
                "path": samples[q].path,
                "category": class_names[samples[q].label],
                "neighbours": [
                    {
                        "path": samples[j].path,
                        "distance": float(distances[j]),
                        "category": class_names[samples[j].label],
                        "same": samples[j].label == samples[q].label,
                    }
                    for j in nearest
                ],
            }
        )
    return rows
