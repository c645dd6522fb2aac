"""Embed a folder of photos with a checkpoint: decoding in DataLoader workers, the forward pass batched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader
from tqdm import tqdm

from ml.checkpoint import embedder_from_checkpoint
from ml.datasets import IMAGE_SUFFIXES, ImageDataset, Sample, collate_skipping
from ml.model import EMBEDDING_DIM


def embed_directory(
    model_path: Path, directory: Path, out: Path, *, device: str = "auto", batch_size: int = 64, workers: int = 2
) -> tuple[list[str], np.ndarray, int]:
    """Write `out` (n x 1000 float32) and `out`.ids.json (paths relative to `directory`, row order)."""
    embedder = embedder_from_checkpoint(model_path, device=device, batch_size=batch_size)
    paths = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"no photos under {directory}")
    dataset = ImageDataset([Sample(p, 0) for p in paths], embedder.preset)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_skipping,
        pin_memory=embedder.device.type == "cuda",
    )
    chunks: list[np.ndarray] = []
    ids: list[str] = []
    skipped = 0
    for batch in tqdm(loader, desc="embed", unit="batch"):
        skipped += batch.dropped
        if batch.indices:
            chunks.append(embedder.forward(batch.images))
            ids.extend(str(paths[i].relative_to(directory)) for i in batch.indices)
    vectors = np.concatenate(chunks) if chunks else np.zeros((0, EMBEDDING_DIM), np.float32)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, vectors)
    out.with_suffix(".ids.json").write_text(json.dumps({"model_version": embedder.model_version, "ids": ids}))
    return ids, vectors, skipped
