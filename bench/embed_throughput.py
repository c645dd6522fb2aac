"""Embedding throughput of every backbone: decode + preprocess + forward, against the forward pass alone.

    uv run python bench/embed_throughput.py --data ../shared/datasets/clothing-small/validation

Models: the built-in ImageNet ones (`efficientnet_lite0-imagenet`, `efficientnet_lite2-imagenet`),
`resnet50` (the same network and cost as `resnet50-imagenet`, with random weights where torchvision's
cache has none), or checkpoints. On CUDA the embedder runs with AMP (float16) and channels_last,
batches come from pinned memory. Prints photos/s (median of the repeats) and the ratio
end-to-end / forward-only, one block per model, then a table.

It also runs the batched decode of ml/gpu_decode.py: the files' bytes read ahead by a thread (a bounded queue),
JPEGs decoded by nvJPEG on CUDA (torchvision's decoder on the CPU), resized, cropped and normalized on the device,
then the forward pass; decode+preprocess alone and the whole, in photos/s.
"""

from __future__ import annotations

import argparse
import json
import queue
import statistics
import threading
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ml.backbones import build_backbone
from ml.datasets import IMAGE_SUFFIXES, ImageDataset, Sample, collate_skipping
from ml.embedder import Embedder
from ml.gpu_decode import decode_batch
from ml.loading import load_embedder


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of photos (searched recursively)")
    parser.add_argument(
        "--models",
        default="efficientnet_lite0-imagenet,efficientnet_lite2-imagenet,resnet50",
        help="comma-separated: built-in names, resnet50 (random weights, same cost), or checkpoint paths",
    )
    parser.add_argument("--photos", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
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


def read_ahead(paths: list[Path], batch_size: int, depth: int = 4) -> queue.Queue[list[bytes] | None]:
    """The files' bytes, a batch at a time, read by a thread at most `depth` batches ahead; None at the end."""
    batches: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=depth)

    def read() -> None:
        for start in range(0, len(paths), batch_size):
            batches.put([p.read_bytes() for p in paths[start : start + batch_size]])
        batches.put(None)

    threading.Thread(target=read, daemon=True).start()
    return batches


def device_decode(embedder: Embedder, paths: list[Path], batch_size: int) -> tuple[float, float]:
    """photos/s of the batched decode + preprocess on the embedder's device alone, and with the forward pass."""
    rates = []
    for with_forward in (False, True):
        batches = read_ahead(paths, batch_size)
        done = 0
        sync(embedder.device)
        start = time.perf_counter()
        while (files := batches.get()) is not None:
            decoded = decode_batch(files, embedder.preset, embedder.device)
            if with_forward and decoded.kept:
                embedder.forward(decoded.pixels)
            done += len(decoded.kept)
        sync(embedder.device)
        rates.append(done / (time.perf_counter() - start))
    return rates[0], rates[1]


def load(model: str, device: str, batch_size: int) -> Embedder:
    if model == "resnet50":
        network = build_backbone("resnet50", "none")
        return Embedder(network, model_version="resnet50 (random weights)", device=device, batch_size=batch_size)
    return load_embedder(model, device=device, batch_size=batch_size)


def measure(model: str, paths: list[Path], args: argparse.Namespace) -> dict[str, object]:
    torch.manual_seed(0)
    embedder = load(model, args.device, args.batch_size)
    first_batch = embedder.preprocess([Image.open(p) for p in paths[: args.batch_size]])
    forward = [forward_only(embedder, first_batch, args.repeats) for _ in range(args.repeats)]
    e2e_workers = [end_to_end(embedder, paths, args.batch_size, args.workers) for _ in range(args.repeats)]
    e2e_serial = [end_to_end(embedder, paths, args.batch_size, 0) for _ in range(args.repeats)]
    on_device = [device_decode(embedder, paths, args.batch_size) for _ in range(args.repeats)]
    result: dict[str, object] = {
        "model": model,
        "arch": embedder.info.arch,
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
    result["ratio_end_to_end_to_forward"] = statistics.median(e2e_workers) / statistics.median(forward)
    result["device_decode_preprocess_photos_per_s"] = statistics.median(r[0] for r in on_device)
    result["device_decode_end_to_end_photos_per_s"] = statistics.median(r[1] for r in on_device)
    print(
        f"{model}: device {result['device']} ({result['device_name']}), AMP {result['amp_channels_last']}, "
        f"{result['threads']} threads, {len(paths)} photos, batch {args.batch_size}, {embedder.info.image_size} px"
    )
    print(f"  forward pass alone                     {result['forward_only_photos_per_s']:8.1f} photos/s")
    print(f"  decode+preprocess+forward, {args.workers} workers   {result['end_to_end_photos_per_s']:8.1f} photos/s")
    print(f"  decode+preprocess+forward, in-process  {result['end_to_end_no_workers_photos_per_s']:8.1f} photos/s")
    print(f"  ratio end-to-end / forward             {result['ratio_end_to_end_to_forward']:8.2f}")
    decode_only = result["device_decode_preprocess_photos_per_s"]
    decode_forward = result["device_decode_end_to_end_photos_per_s"]
    print(f"  batched decode+preprocess on {result['device']:<9} {decode_only:8.1f} photos/s")
    print(f"  batched decode+preprocess+forward      {decode_forward:8.1f} photos/s", flush=True)
    return result


def main(args: argparse.Namespace) -> list[dict[str, object]]:
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[: args.photos]
    if len(paths) < args.batch_size:
        raise SystemExit(f"need at least {args.batch_size} photos under {args.data}, found {len(paths)}")
    results = [measure(model.strip(), paths, args) for model in args.models.split(",") if model.strip()]
    print(f"\n| model | px | forward | end-to-end, {args.workers} workers | end-to-end, in-process | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        print(
            f"| {r['model']} | {r['image_size']} | {r['forward_only_photos_per_s']:.1f} |"
            f" {r['end_to_end_photos_per_s']:.1f} | {r['end_to_end_no_workers_photos_per_s']:.1f} |"
            f" {r['ratio_end_to_end_to_forward']:.2f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())
