"""Which vector distance separates near-copies of a photo from photos of other products? Measured on real photos.

    uv run python bench/duplicates.py --data ../shared/datasets/clothing-small/validation [--model VERSION|CKPT]

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

from ml.checkpoint import embedder_from_checkpoint
from ml.datasets import IMAGE_SUFFIXES
from ml.embedder import Embedder
from ml.pretrained import builtin_arch, pretrained_embedder

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
    args = parser.parse_args()
    embedder = (
        Embedder.untrained(image_size=224, device="cpu")
        if args.model == "untrained"
        else pretrained_embedder(args.model, device="cpu")
        if builtin_arch(args.model)
        else embedder_from_checkpoint(Path(args.model), device="cpu")
    )
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
    print(f"{'threshold':>9} {'recall':>7} {'precision':>9} {'false flags':>11} {'catalog pairs':>13}")
    rows = []
    for t in np.round(np.arange(0.05, 1.001, 0.05), 3):
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
            f"{t:>9.2f} {row['recall']:>7.3f} {row['precision']:>9.3f} {false_flags:>11d} {row['catalog_pairs']:>13d}"
        )
    keep = [r for r in rows if r["precision"] >= args.precision]
    chosen = max(keep, key=lambda r: r["threshold"]) if keep else rows[0]
    by_edit = ", ".join(f"{e} {v:.3f}" for e, v in chosen["recall_by_edit"].items())
    print(
        f"chosen DUPLICATE_DISTANCE={chosen['threshold']:.2f}: recall {chosen['recall']:.3f} ({by_edit}),"
        f" precision {chosen['precision']:.3f} (at least {args.precision})"
    )
    if args.json:
        args.json.write_text(json.dumps({"model": embedder.model_version, "rows": rows, "chosen": chosen}, indent=2))


if __name__ == "__main__":
    main()
