"""Embedding throughput: decode + preprocess + forward, against the forward pass alone, in one run.

    uv run python bench/embed_throughput.py --data ../shared/datasets/clothing-small/validation

On CUDA the embedder runs with AMP (float16) and channels_last, batches come from pinned memory.
Prints photos/s (median of the repeats) and the ratio end-to-end / forward-only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ml.checkpoint import embedder_from_checkpoint
from ml.datasets import IMAGE_SUFFIXES, ImageDataset, Sample, collate_skipping
from ml.embedder import Embedder


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of photos (searched recursively)")
    parser.add_argument("--model", default="untrained", help="a checkpoint, or 'untrained' (same cost)")
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for decoding")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def forward_only(embedder: Embedder, batch: torch.Tensor, repeats: int) -> float:
    """photos/s of the forward pass on one already decoded, preprocessed batch (host to device included)."""
    embedder.forward(batch)  # warm-up: kernels, allocator
    times = []
    for _ in range(max(repeats, 3)):
        sync(embedder.device)
        start = time.perf_counter()
        embedder.forward(batch)
        sync(embedder.device)
        times.append(time.perf_counter() - start)
    return len(batch) / statistics.median(times)


def end_to_end(embedder: Embedder, paths: list[Path], batch_size: int, workers: int) -> float:
    """photos/s of reading files, decoding, preprocessing and the forward pass, batches overlapping decode."""
    loader = DataLoader(
        ImageDataset([Sample(p, 0) for p in paths], embedder.preset),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=embedder.device.type == "cuda",
        persistent_workers=False,
    )
    done = 0
    sync(embedder.device)
    start = time.perf_counter()
    for batch in loader:
        if batch.indices:
            embedder.forward(batch.images)
            done += len(batch.indices)
    sync(embedder.device)
    return done / (time.perf_counter() - start)


def main(args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(0)
    if args.model == "untrained":
        embedder = Embedder.untrained(image_size=args.image_size, device=args.device, batch_size=args.batch_size)
    else:
        embedder = embedder_from_checkpoint(Path(args.model), device=args.device, batch_size=args.batch_size)
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.photos]
    if len(paths) < args.batch_size:
        raise SystemExit(f"need at least {args.batch_size} photos under {args.data}, found {len(paths)}")
    first_batch = embedder.preprocess([Image.open(p) for p in paths[: args.batch_size]])
    forward = [forward_only(embedder, first_batch, args.repeats) for _ in range(args.repeats)]
    e2e_workers = [end_to_end(embedder, paths, args.batch_size, args.workers) for _ in range(args.repeats)]
    e2e_serial = [end_to_end(embedder, paths, args.batch_size, 0) for _ in range(args.repeats)]
    result = {
        "device": str(embedder.device),
        "device_name": torch.cuda.get_device_name() if embedder.device.type == "cuda" else "cpu",
        "amp_channels_last": embedder.use_amp,
        "threads": torch.get_num_threads(),
        "photos": len(paths),
        "batch_size": args.batch_size,
        "image_size": embedder.info.image_size,
        "workers": args.workers,
        "forward_only_photos_per_s": statistics.median(forward),
        "end_to_end_photos_per_s": statistics.median(e2e_workers),
        "end_to_end_no_workers_photos_per_s": statistics.median(e2e_serial),
    }
    result["ratio_end_to_end_to_forward"] = result["end_to_end_photos_per_s"] / result["forward_only_photos_per_s"]
    print(
        f"device {result['device']} ({result['device_name']}), AMP+channels_last {result['amp_channels_last']}, "
        f"{result['threads']} threads, {len(paths)} photos, batch {args.batch_size}, {embedder.info.image_size} px"
    )
    print(f"forward pass alone              {result['forward_only_photos_per_s']:8.1f} photos/s")
    print(f"decode+preprocess+forward, {args.workers} workers {result['end_to_end_photos_per_s']:8.1f} photos/s")
    print(f"decode+preprocess+forward, in-process {result['end_to_end_no_workers_photos_per_s']:8.1f} photos/s")
    print(f"ratio end-to-end / forward       {result['ratio_end_to_end_to_forward']:8.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
