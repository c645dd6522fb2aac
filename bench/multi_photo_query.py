"""How should a product with several photos ask for similar items? Measured on real photos.

    uv run python bench/multi_photo_query.py --data ../shared/datasets/clothing-small/validation [--model CKPT]

Each photo of DATA/<category>/ becomes a product with three photos: the photo, its mirror image
and a centre crop (the views a shop uploads of one item). Every product queries all the
others' photos (exact Euclidean search, so only the strategy differs) and the results are
grouped by product, as the API does. Strategies:
  all-photos  every photo queries; a product counts by its closest photo to any of them (the API's)
  mean        one query with the mean of the product's vectors
  first       one query with the first photo only
Prints precision@10 (same category) and the number of index searches per request.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ml.datasets import IMAGE_SUFFIXES
from ml.loading import load_embedder


def views(path: Path) -> list[Image.Image]:
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    crop = image.crop((w // 8, h // 8, w - w // 8, h - h // 8))
    return [image, ImageOps.mirror(image), crop]


def grouped_precision(
    query_sets: list[np.ndarray], gallery: np.ndarray, owner: np.ndarray, labels: np.ndarray, k: int = 10
) -> float:
    precisions = []
    for product, queries in enumerate(query_sets):
        distances = np.linalg.norm(gallery[None, :, :] - queries[:, None, :], axis=2).min(axis=0)
        best = np.full(len(labels), np.inf)
        np.minimum.at(best, owner, distances)
        best[product] = np.inf
        top = np.argsort(best)[:k]
        precisions.append(float(np.mean(labels[top] == labels[product])))
    return float(np.mean(precisions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="untrained")
    parser.add_argument("--image-size", type=int, default=224, help="for the untrained network")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    embedder = load_embedder(args.model, device="cpu", image_size=args.image_size)
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    categories = sorted({p.parent.name for p in paths})
    labels = np.array([categories.index(p.parent.name) for p in paths])
    vectors = embedder.embed([view for p in paths for view in views(p)]).reshape(len(paths), 3, -1)
    gallery = vectors.reshape(len(paths) * 3, -1)
    owner = np.repeat(np.arange(len(paths)), 3)
    result = {"model": embedder.model_version, "products": len(paths), "photos_per_product": 3}
    strategies = {
        "all-photos": ([v for v in vectors], 3),
        "mean": ([v.mean(axis=0, keepdims=True) for v in vectors], 1),
        "first": ([v[:1] for v in vectors], 1),
    }
    for name, (query_sets, searches) in strategies.items():
        result[name] = {"P@10": grouped_precision(query_sets, gallery, owner, labels), "searches": searches}
        print(f"{name:<11} P@10 {result[name]['P@10']:.3f}   index searches per request: {searches}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
