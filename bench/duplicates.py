"""Which distance separates near-copies of a photo from photos of other products? Measured on real photos.

    uv run python bench/duplicates.py --data ../shared/datasets/clothing-small/validation [--model VERSION|CKPT]
    uv run python bench/duplicates.py --data ../shared/datasets/clothing-small/validation --descriptor copy

`--descriptor copy` (the default) measures the copy descriptor the service flags near-copies by (COPY_DISTANCE:
1 - cosine of the best pair of variants, as the index's MaxSim over both photos' variants); `--descriptor
embedding` the 1000-d vector of `--model` (DUPLICATE_DISTANCE, for collections from before the copy descriptor).

Every photo of DATA/<category>/ is a product. Each gets four near-copies, the edits a photo goes through
when a shop uploads it twice: mirrored, cropped (a tenth off each side), recompressed (JPEG quality 30),
and halved in size. A copy is flagged against every product photo closer than the threshold
(exact Euclidean search over all the originals, as the index answers with max_distance):
  recall     the copies flagged against their own original
  precision  flags on the own original among all flags (a flag on another product is a false duplicate)
Also counts the pairs of different originals under the threshold (the catalog's own near-copies).
Prints the table and the largest threshold whose precision is at least --precision (DUPLICATE_DISTANCE).
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ml.datasets import IMAGE_SUFFIXES
from ml.descriptors import copy_vectors
from ml.loading import load_embedder

EDITS = ("mirrored", "cropped", "recompressed", "halved")


def edits(image: Image.Image) -> list[Image.Image]:
    w, h = image.size
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=30)
    with Image.open(io.BytesIO(buffer.getvalue())) as recompressed:
        jpeg = recompressed.convert("RGB")
    return [
        ImageOps.mirror(image),
        image.crop((w // 10, h // 10, w - w // 10, h - h // 10)),
        jpeg,
        image.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default="efficientnet_lite0-imagenet")
    parser.add_argument("--precision", type=float, default=0.98, help="the precision the chosen threshold keeps")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--descriptor", choices=["copy", "embedding"], default="copy")
    args = parser.parse_args()
    if args.descriptor == "copy":
        measure_copy(args)
        return
    embedder = load_embedder(args.model, device="cpu")
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for path in paths:
        with Image.open(path) as opened:
            images.append(opened.convert("RGB"))
    originals = embedder.embed(images)
    copies = embedder.embed([copy for image in images for copy in edits(image)]).reshape(len(paths), len(EDITS), -1)
    n = len(paths)
    # Distance of every copy to every original: (photo, edit, original).
    to_originals = np.linalg.norm(copies[:, :, None, :] - originals[None, None, :, :], axis=3)
    own = to_originals[np.arange(n), :, np.arange(n)]  # (photo, edit)
    others = to_originals.copy()
    others[np.arange(n), :, np.arange(n)] = np.inf
    between = np.linalg.norm(originals[:, None, :] - originals[None, :, :], axis=2)
    between[np.tril_indices(n)] = np.inf
    print(f"model {embedder.model_version}: {n} photos, {n * len(EDITS)} near-copies ({', '.join(EDITS)})")
    print(
        f"own-original distance: median {np.median(own):.3f}, max {own.max():.3f};"
        f" nearest other product: median {np.median(others.min(axis=2)):.3f}, min {others.min():.3f}"
    )
    report(own, others, between, np.round(np.arange(0.05, 1.001, 0.05), 3), args, embedder.model_version)


def measure_copy(args: argparse.Namespace) -> None:
    """The copy descriptor: the similarity of two photos is the best cosine over their variants' pairs."""
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for path in paths:
        with Image.open(path) as opened:
            images.append(opened.convert("RGB"))
    n = len(images)
    originals = np.stack([copy_vectors(image) for image in images])  # (n, variants, dim)
    copies = np.stack([np.stack([copy_vectors(c) for c in edits(image)]) for image in images])  # (n, edit, v, dim)
    # Distance of every copy to every original: 1 - the best cosine over the variants' pairs.
    to_originals = 1 - np.einsum("jevd,iwd->jeivw", copies, originals).max(axis=(3, 4))
    own = to_originals[np.arange(n), :, np.arange(n)]
    others = to_originals.copy()
    others[np.arange(n), :, np.arange(n)] = np.inf
    between = 1 - np.einsum("jvd,iwd->jivw", originals, originals).max(axis=(2, 3))
    between[np.tril_indices(n)] = np.inf
    print(f"copy descriptor: {n} photos, {n * len(EDITS)} near-copies ({', '.join(EDITS)})")
    print(
        f"own-original distance: median {np.median(own):.4f}, max {own.max():.4f};"
        f" nearest other product: median {np.median(others.min(axis=2)):.4f}, min {others.min():.4f}"
    )
    report(own, others, between, np.round(np.arange(0.005, 0.1001, 0.005), 3), args, "copy descriptor")


def report(
    own: np.ndarray,
    others: np.ndarray,
    between: np.ndarray,
    thresholds: np.ndarray,
    args: argparse.Namespace,
    name: str,
) -> None:
    print(f"{'threshold':>9} {'recall':>7} {'precision':>9} {'false flags':>11} {'catalog pairs':>13}")
    rows = []
    for t in thresholds:
        true_flags = int((own < t).sum())
        false_flags = int((others < t).sum())
        flags = true_flags + false_flags
        row = {
            "threshold": float(t),
            "recall": true_flags / own.size,
            "precision": true_flags / flags if flags else 1.0,
            "false_flags": false_flags,
            "catalog_pairs": int((between < t).sum()),
            "recall_by_edit": {e: float((own[:, i] < t).mean()) for i, e in enumerate(EDITS)},
        }
        rows.append(row)
        print(
            f"{t:>9.3f} {row['recall']:>7.3f} {row['precision']:>9.3f} {false_flags:>11d} {row['catalog_pairs']:>13d}"
        )
    keep = [r for r in rows if r["precision"] >= args.precision]
    chosen = max(keep, key=lambda r: r["threshold"]) if keep else rows[0]
    by_edit = ", ".join(f"{e} {v:.3f}" for e, v in chosen["recall_by_edit"].items())
    print(
        f"chosen threshold {chosen['threshold']:.3f}: recall {chosen['recall']:.3f} ({by_edit}),"
        f" precision {chosen['precision']:.3f} (at least {args.precision})"
    )
    if args.json:
        args.json.write_text(json.dumps({"descriptor": name, "rows": rows, "chosen": chosen}, indent=2))


if __name__ == "__main__":
    main()
