"""What `lookalike evaluate` adds for the look: colour difference of the neighbours, and same-product retrieval.

Colour difference: the mean CIE Lab colour of each photo's central 40% box, and the CIE76 difference (Euclidean
in Lab) between a photo and each of its 10 nearest, the median over all query-neighbour pairs. References from
the same photos: 10 random photos of the same category, and the 10 photos of the same category closest in that
colour (what no ranking can beat without leaving the category).

The look ranking mirrors the service's (backend.services.similar, backend.index LookQuery): among the
`candidates` nearest by the kind vector, (1 - weight) * kind distance / s + weight * look distance / t, where s and t
are the median distances from a sample of 32 photos to their candidates, as the service measures them; then the same
candidates once more with the query expanded by its best hits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ml.descriptors import srgb_to_lab
from ml.pixels import to_rgb
from ml.versions import EXPANSION_POWER

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


def look_order(
    embedding: np.ndarray,
    look: np.ndarray,
    weight: float,
    candidates: int,
    k: int = 10,
    *,
    kind: np.ndarray | None = None,
    expansion: int = 0,
) -> np.ndarray:
    """The k nearest of each photo (itself left out) by the index's look ranking; weight 0 is the plain ranking.

    As the service ranks (backend.services.similar): the candidates are the nearest by `kind` (by `embedding` without
    it), and with `expansion` the same candidates are ranked again with each photo's kind and look vectors
    expanded by its `expansion` best hits (alpha-QE, weights the cosine similarity to EXPANSION_POWER)."""
    if weight == 0:
        return nearest(distances(embedding), k)
    candidates = min(candidates, len(embedding) - 1)  # never the photo itself
    pool_vectors = embedding if kind is None else kind
    by_pool = distances(pool_vectors)
    by_look = distances(look)
    sample = np.arange(min(SCALE_SAMPLE, len(embedding)))
    pools = nearest(by_pool, candidates)
    s = float(np.median(np.take_along_axis(by_pool[sample], pools[sample], axis=1)))
    t = float(np.median(np.take_along_axis(by_look[sample], pools[sample], axis=1)))

    def ranked(pools: np.ndarray, pool_d: np.ndarray, look_d: np.ndarray, n: int) -> np.ndarray:
        blended = (1 - weight) * pool_d / max(s, 1e-6) + weight * look_d / max(t, 1e-6)
        return np.take_along_axis(pools, np.argsort(blended, axis=1, kind="stable")[:, :n], axis=1)

    pool_d = np.take_along_axis(by_pool, pools, 1)
    look_d = np.take_along_axis(by_look, pools, 1)
    if kind is None or expansion <= 0:
        return ranked(pools, pool_d, look_d, k)
    first = ranked(pools, pool_d, look_d, expansion)
    kind_q, look_q = expand(kind, first), expand(look, first)
    pool_d = np.linalg.norm(kind_q[:, None, :] - kind[pools], axis=2)
    look_d = np.linalg.norm(look_q[:, None, :] - look[pools], axis=2)
    return ranked(pools, pool_d, look_d, k)


def expand(vectors: np.ndarray, hits: np.ndarray, power: int = EXPANSION_POWER) -> np.ndarray:
    """Each unit row plus its hits' rows weighted by their cosine similarity to it to `power`, unit length."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    total = unit.copy()
    for j in range(hits.shape[1]):
        other = unit[hits[:, j]]
        total += np.clip((unit * other).sum(axis=1, keepdims=True), 0, None) ** power * other
    return (total / np.maximum(np.linalg.norm(total, axis=1, keepdims=True), 1e-12)).astype(np.float32)


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
