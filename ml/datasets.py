"""Dataset readers: a folder tree, a CSV manifest, or the DeepFashion Category and Attribute layout.

Each reader returns a `Catalog`: class names and samples per split. Missing files and unknown
classes fail with a clear message; unreadable images are skipped and counted.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image
from torch.utils.data import Dataset

from ml.presets import to_rgb
from ml.versions import DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
SPLIT_ALIASES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    bbox: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2
    product: str | None = None  # which product the photo shows, where the data says (labels.csv, a product column)


@dataclass
class Catalog:
    class_names: list[str]
    splits: dict[str, list[Sample]]
    skipped: Counter[str] = field(default_factory=Counter)

    def split(self, name: str) -> list[Sample]:
        key = SPLIT_ALIASES.get(name, name)
        if key not in self.splits or not self.splits[key]:
            raise DatasetError(f"split {name!r} is empty or missing; this dataset has: {', '.join(self.splits)}")
        return self.splits[key]


def _readable(path: Path) -> bool:
    """Header check only (cheap): decoding problems later are counted by the Dataset."""
    try:
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:
        return False


def _check_files(catalog: Catalog, *, verify: bool) -> Catalog:
    missing = [s.path for samples in catalog.splits.values() for s in samples if not s.path.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise DatasetError(f"{len(missing)} listed image(s) do not exist, e.g. {shown}")
    if verify:
        for name, samples in catalog.splits.items():
            kept = [s for s in samples if _readable(s.path)]
            if len(kept) != len(samples):
                catalog.skipped[f"unreadable image in {name}"] += len(samples) - len(kept)
            catalog.splits[name] = kept
    return catalog


def _seeded_split(samples: list[Sample], val_fraction: float, seed: int) -> dict[str, list[Sample]]:
    """Per class, so that every class is in both splits when it has two or more photos."""
    by_label: dict[int, list[Sample]] = {}
    for sample in samples:
        by_label.setdefault(sample.label, []).append(sample)
    rng = random.Random(seed)
    train, val = [], []
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda s: str(s.path))
        rng.shuffle(group)
        n_val = max(1, round(len(group) * val_fraction)) if len(group) > 1 else 0
        val.extend(group[:n_val])
        train.extend(group[n_val:])
    return {"train": train, "validation": val}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def read_folder_tree(root: Path, *, val_fraction: float = 0.1, seed: int = 0, verify: bool = True) -> Catalog:
    """`root/<split>/<category>/*` (splits train, validation/val, test), or `root/<category>/*` split by seed."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    split_dirs = {SPLIT_ALIASES[p.name]: p for p in root.iterdir() if p.is_dir() and p.name in SPLIT_ALIASES}
    if split_dirs:
        # Classes are train/'s; a folder with no train/ (an evaluation set such as test/ alone) takes
        # the categories of all its splits.
        sources = [split_dirs["train"]] if "train" in split_dirs else list(split_dirs.values())
        class_names = sorted({p.name for folder in sources for p in folder.iterdir() if p.is_dir()})
        index = {name: i for i, name in enumerate(class_names)}
        splits: dict[str, list[Sample]] = {}
        for split, folder in split_dirs.items():
            unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in index)
            if unknown:
                raise DatasetError(f"{folder} has categories not in train/: {', '.join(unknown)}")
            splits[split] = [
                Sample(path, index[category.name])
                for category in sorted(p for p in folder.iterdir() if p.is_dir())
                for path in _images_in(category)
            ]
    else:
        class_names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        samples = [Sample(path, i) for i, name in enumerate(class_names) for path in _images_in(root / name)]
        splits = _seeded_split(samples, val_fraction, seed)
    if not class_names:
        raise DatasetError(f"no category folders under {root}")
    products = product_labels(root)
    if products:
        splits = {
            name: [replace(s, product=products.get(str(s.path.resolve()))) for s in samples]
            for name, samples in splits.items()
        }
    return _check_files(Catalog(class_names, splits), verify=verify)


def product_labels(root: Path) -> dict[str, str]:
    """ROOT/labels.csv's `product_id` by resolved file path (`file` relative to ROOT); empty without one."""
    table = Path(root) / "labels.csv"
    if not table.is_file():
        return {}
    with table.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"file", "product_id"} <= set(reader.fieldnames or []):
            return {}
        return {
            str((Path(root) / row["file"]).resolve()): row["product_id"].strip()
            for row in reader
            if row["product_id"].strip()
        }


def read_csv_manifest(path: Path, *, val_fraction: float = 0.1, seed: int = 0, verify: bool = True) -> Catalog:
    """A CSV with a header `path,category[,split][,product]`; relative paths are relative to the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        if not {"path", "category"} <= columns:
            raise DatasetError(f"{path}: the header must have path and category (and optionally split), got {columns}")
        rows = list(reader)
    has_split = "split" in columns and all(row.get("split") for row in rows)
    train_rows = [r for r in rows if not has_split or SPLIT_ALIASES.get(r["split"].strip()) == "train"]
    class_names = sorted({r["category"].strip() for r in train_rows})
    index = {name: i for i, name in enumerate(class_names)}

    def sample(row: dict[str, str], line: int) -> Sample:
        category = row["category"].strip()
        if category not in index:
            raise DatasetError(f"{path}:{line}: category {category!r} does not occur in the training rows")
        file = Path(row["path"].strip())
        product = (row.get("product") or "").strip() or None
        return Sample(file if file.is_absolute() else path.parent / file, index[category], product=product)

    if has_split:
        splits: dict[str, list[Sample]] = {}
        for line, row in enumerate(rows, start=2):
            split = SPLIT_ALIASES.get(row["split"].strip())
            if split is None:
                raise DatasetError(f"{path}:{line}: unknown split {row['split']!r} (train, validation, test)")
            splits.setdefault(split, []).append(sample(row, line))
    else:
        splits = _seeded_split([sample(r, i) for i, r in enumerate(rows, start=2)], val_fraction, seed)
    return _check_files(Catalog(class_names, splits), verify=verify)


DEEPFASHION_FILES = ("list_category_cloth.txt", "list_category_img.txt", "list_eval_partition.txt")


def _deepfashion_rows(path: Path) -> list[list[str]]:
    """DeepFashion's lists: a count line, a header line, then whitespace-separated rows."""
    lines = path.read_text().splitlines()
    return [line.split() for line in lines[2:] if line.strip()]


def read_deepfashion(root: Path, *, use_bbox: bool = True, verify: bool = True) -> Catalog:
    """DeepFashion Category and Attribute Prediction: `Anno/` (or root) lists, `Eval/` partition, images.

    Labels in list_category_img.txt are 1-based indexes into list_category_cloth.txt. Only
    categories that have images are kept, so class indexes are dense.
    """
    root = Path(root)

    def find(name: str, required: bool = True) -> Path | None:
        for candidate in (root / name, root / "Anno" / name, root / "Anno_coarse" / name, root / "Eval" / name):
            if candidate.is_file():
                return candidate
        if required:
            raise DatasetError(f"DeepFashion file {name} not found under {root} (looked in ., Anno/, Eval/)")
        return None

    cloth = [row[0] for row in _deepfashion_rows(find("list_category_cloth.txt"))]  # type: ignore[arg-type]
    labels: dict[str, str] = {}
    for image, label in _deepfashion_rows(find("list_category_img.txt")):  # type: ignore[arg-type]
        number = int(label)
        if not 1 <= number <= len(cloth):
            raise DatasetError(f"list_category_img.txt: {image} has category {number}, not in 1..{len(cloth)}")
        labels[image] = cloth[number - 1]
    partition = {image: split for image, split in _deepfashion_rows(find("list_eval_partition.txt"))}  # type: ignore[arg-type]
    boxes: dict[str, tuple[int, int, int, int]] = {}
    bbox_file = find("list_bbox.txt", required=False) if use_bbox else None
    if bbox_file is not None:
        boxes = {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in _deepfashion_rows(bbox_file)}
    unknown = sorted(set(partition) - set(labels))
    if unknown:
        raise DatasetError(f"list_eval_partition.txt names {len(unknown)} image(s) with no category, e.g. {unknown[0]}")
    class_names = sorted({labels[image] for image, split in partition.items() if split == "train"})
    index = {name: i for i, name in enumerate(class_names)}
    splits: dict[str, list[Sample]] = {}
    for image, split in sorted(partition.items()):
        name = SPLIT_ALIASES.get("validation" if split == "val" else split)
        if name is None:
            raise DatasetError(f"list_eval_partition.txt: unknown split {split!r} for {image}")
        if labels[image] not in index:
            raise DatasetError(f"{image}: category {labels[image]!r} has no training image")
        splits.setdefault(name, []).append(Sample(root / image, index[labels[image]], boxes.get(image)))
    return _check_files(Catalog(class_names, splits), verify=verify)


def load_catalog(data: Path, *, val_fraction: float = 0.1, seed: int = 0, verify: bool = True) -> Catalog:
    """Pick the reader from what `data` is: a .csv manifest, a DeepFashion root, or a folder tree."""
    data = Path(data)
    if data.suffix.lower() == ".csv":
        return read_csv_manifest(data, val_fraction=val_fraction, seed=seed, verify=verify)
    if not data.exists():
        raise DatasetError(f"dataset not found: {data}")
    if any((data / d / "list_category_img.txt").is_file() for d in (".", "Anno", "Anno_coarse")):
        return read_deepfashion(data, verify=verify)
    return read_folder_tree(data, val_fraction=val_fraction, seed=seed, verify=verify)


class Batch(NamedTuple):
    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]  # positions in the dataset of the photos that decoded
    dropped: int


class ImageDataset(Dataset[tuple[torch.Tensor, int, int] | None]):
    """Decodes samples (cropped to their box when they have one); a photo that fails to decode yields None."""

    def __init__(self, samples: list[Sample], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int] | None:
        sample = self.samples[i]
        try:
            with Image.open(sample.path) as opened:
                image = to_rgb(opened)
            if sample.bbox is not None:
                image = image.crop(sample.bbox)
            return self.transform(image), sample.label, i
        except Exception:
            return None


def collate_skipping(batch: list[tuple[torch.Tensor, int, int] | None]) -> Batch:
    """Stack the decodable samples; count the others."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return Batch(torch.empty(0), torch.empty(0, dtype=torch.long), [], len(batch))
    return Batch(
        torch.stack([image for image, _, _ in kept]),
        torch.tensor([label for _, label, _ in kept], dtype=torch.long),
        [index for _, _, index in kept],
        len(batch) - len(kept),
    )
