"""What `lookalike evaluate` adds for the look: colour difference of the neighbours, and same-product retrieval.

Colour difference: the mean CIE Lab colour of each photo's central 40% box, and the CIE76 difference (Euclidean
in Lab) between a photo and each of its 10 nearest, the median over all query-neighbour pairs. References from
the same photos: 10 random photos of the same category, and the 10 photos of the same category closest in that
colour (what no ranking can beat without leaving the category).

The look ranking mirrors the index's (backend.index LookQuery): among the `candidates` nearest by the 1000-d
vector, (1 - weight) * distance / s + weight * look distance / t, where s and t are the median distances from a
sample of 32 photos to their candidates, as the service measures them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml.descriptors import srgb_to_lab
from ml.pixels import to_rgb

SCALE_SAMPLE = 32


def centre_lab(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        rgb = to_rgb(image)
    w, h = rgb.size
    box = (round(w * 0.3), round(h * 0.3), round(w * 0.7), round(h * 0.7))
    pixels = torch.from_numpy(np.asarray(rgb.crop(box), dtype=np.float64).reshape(-1, 3) / 255)
    return srgb_to_lab(pixels).mean(dim=0).numpy()


def distances(x: np.ndarray) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return torch.cdist(t, t).numpy()


def nearest(dist: np.ndarray, k: int) -> np.ndarray:
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def look_order(embedding: np.ndarray, look: np.ndarray, weight: float, candidates: int, k: int = 10) -> np.ndarray:
    """The k nearest of each photo (itself left out) by the index's look ranking; weight 0 is the plain ranking."""
    by_vector = distances(embedding)
    if weight == 0:
        return nearest(by_vector, k)
    by_look = distances(look)
    pools = nearest(by_vector, candidates)
    sample = np.arange(min(SCALE_SAMPLE, len(embedding)))
    s = float(np.median(np.take_along_axis(by_vector[sample], pools[sample], axis=1)))
    t = float(np.median(np.take_along_axis(by_look[sample], pools[sample], axis=1)))
    blended = (1 - weight) * np.take_along_axis(by_vector, pools, 1) / max(s, 1e-6)
    blended += weight * np.take_along_axis(by_look, pools, 1) / max(t, 1e-6)
    return np.take_along_axis(pools, np.argsort(blended, axis=1, kind="stable")[:, :k], axis=1)


def colour_difference(order: np.ndarray, labs: np.ndarray) -> float:
    """Median CIE76 difference between each photo and its neighbours in `order`."""
    return float(np.median(np.linalg.norm(labs[order] - labs[:, None, :], axis=2)))


def colour_references(labels: np.ndarray, labs: np.ndarray, k: int = 10, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    between = distances(labs)
    random_pairs: list[float] = []
    oracle_pairs: list[float] = []
    for i in range(len(labels)):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(len(labels)) != i))
        if len(same) == 0:
            continue
        random_pairs += list(between[i, rng.choice(same, min(k, len(same)), replace=False)])
        oracle_pairs += list(np.sort(between[i, same])[:k])
    return {"random same category": float(np.median(random_pairs)), "colour oracle": float(np.median(oracle_pairs))}


def order_metrics(order: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """P@1, P@10 and mAP@10 of neighbour lists (AP@k normalised by min(k, other photos of the label))."""
    relevant = (labels[order] == labels[:, None]).astype(np.float64)
    k = order.shape[1]
    others = np.bincount(labels)[labels] - 1
    hits = relevant.cumsum(axis=1)
    ap = ((hits / np.arange(1, k + 1)) * relevant).sum(axis=1) / np.maximum(np.minimum(others, k), 1)
    return {"P@1": float(relevant[:, 0].mean()), "P@10": float(relevant.mean()), "mAP@10": float(ap.mean())}
