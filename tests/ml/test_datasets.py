"""Dataset readers: folder trees, CSV manifests, DeepFashion; clear failures, counted skips."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from ml.datasets import DatasetError, ImageDataset, collate_skipping, load_catalog
from ml.presets import EvalPreset
from tests.utils import images
from tests.utils.colours import COLOURS, write_class_photos


def test_split_tree(split_tree: Path) -> None:
    catalog = load_catalog(split_tree)
    assert catalog.class_names == sorted(COLOURS)
    assert {k: len(v) for k, v in catalog.splits.items()} == {"train": 64, "validation": 20}
    assert {s.label for s in catalog.split("val")} == {0, 1, 2, 3}


def test_unknown_category_in_validation_fails(split_tree: Path) -> None:
    write_class_photos(split_tree / "validation" / "purple", (120, 0, 120), 2, 9)
    with pytest.raises(DatasetError, match="purple"):
        load_catalog(split_tree)


def test_category_tree_gets_a_seeded_stratified_split(tmp_path: Path) -> None:
    for seed, (name, colour) in enumerate(COLOURS.items()):
        write_class_photos(tmp_path / name, colour, 10, seed)
    first = load_catalog(tmp_path, val_fraction=0.2, seed=1)
    again = load_catalog(tmp_path, val_fraction=0.2, seed=1)
    other = load_catalog(tmp_path, val_fraction=0.2, seed=2)
    assert [s.path for s in first.split("validation")] == [s.path for s in again.split("validation")]
    assert [s.path for s in first.split("validation")] != [s.path for s in other.split("validation")]
    assert len(first.split("validation")) == 8 and len(first.split("train")) == 32
    assert {s.label for s in first.split("validation")} == {0, 1, 2, 3}


def test_unreadable_images_are_skipped_and_counted(split_tree: Path) -> None:
    (split_tree / "train" / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (split_tree / "train" / "red" / "notes.jpg").write_text("text")
    catalog = load_catalog(split_tree)
    assert catalog.skipped["unreadable image in train"] == 2 and len(catalog.split("train")) == 64
    # A file that passes the header check but fails to decode is dropped by the loader, counted.
    (split_tree / "cut.jpg").write_bytes(images.truncated_jpeg())
    samples = [*catalog.split("train")[:2], type(catalog.split("train")[0])(split_tree / "cut.jpg", 0)]
    batch = collate_skipping([ImageDataset(samples, EvalPreset(32))[i] for i in range(3)])
    assert batch.images.shape == (2, 3, 32, 32) and batch.indices == [0, 1] and batch.dropped == 1


def test_csv_manifest(split_tree: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    rows = ["path,category,split"]
    for split in ("train", "validation"):
        for path in sorted((split_tree / split).rglob("*.png")):
            rows.append(f"{path.relative_to(tmp_path)},{path.parent.name},{split}")
    manifest.write_text("\n".join(rows) + "\n")
    catalog = load_catalog(manifest)
    assert catalog.class_names == sorted(COLOURS) and len(catalog.split("validation")) == 20
    # Without a split column the rows are split by seed.
    no_split = tmp_path / "nosplit.csv"
    no_split.write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    assert len(load_catalog(no_split, val_fraction=0.25).split("validation")) == 4 * round(21 * 0.25)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("path,category,split\nmissing.png,red,train\n", "do not exist"),
        ("file,label\nx.png,red\n", "header must have path and category"),
        ("path,category,split\n{red},red,train\n{red},purple,validation\n", "purple"),
        ("path,category,split\n{red},red,holdout\n", "unknown split"),
    ],
)
def test_csv_manifest_failures(split_tree: Path, tmp_path: Path, content: str, message: str) -> None:
    red = next((split_tree / "train" / "red").glob("*.png"))
    manifest = tmp_path / "bad.csv"
    manifest.write_text(content.format(red=red))
    with pytest.raises(DatasetError, match=message):
        load_catalog(manifest)


def make_deepfashion(root: Path) -> None:
    (root / "Anno").mkdir(parents=True)
    (root / "Eval").mkdir()
    cloth = ["Blouse 1", "Jeans 2", "Dress 3"]  # index 1..3; Jeans has no photo and is dropped
    (root / "Anno" / "list_category_cloth.txt").write_text(
        f"{len(cloth)}\ncategory_name category_type\n" + "\n".join(cloth) + "\n"
    )
    entries, partition, boxes = [], [], []
    for i in range(12):
        label = 1 if i % 2 else 3
        name = f"img/item_{i}/01.jpg"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (80, 60), (200, 10, 10) if label == 1 else (10, 10, 200)).save(root / name)
        entries.append(f"{name} {label}")
        partition.append(f"{name} {'train' if i < 8 else 'val' if i < 10 else 'test'}")
        boxes.append(f"{name} 10 5 50 45")
    header = "image_name category_label\n"
    (root / "Anno" / "list_category_img.txt").write_text(f"{len(entries)}\n{header}" + "\n".join(entries) + "\n")
    (root / "Eval" / "list_eval_partition.txt").write_text(
        f"{len(partition)}\nimage_name evaluation_status\n" + "\n".join(partition) + "\n"
    )
    (root / "Anno" / "list_bbox.txt").write_text(
        f"{len(boxes)}\nimage_name x_1 y_1 x_2 y_2\n" + "\n".join(boxes) + "\n"
    )


def test_deepfashion_layout_with_boxes(tmp_path: Path) -> None:
    make_deepfashion(tmp_path)
    catalog = load_catalog(tmp_path)
    assert catalog.class_names == ["Blouse", "Dress"]
    assert {k: len(v) for k, v in catalog.splits.items()} == {"train": 8, "validation": 2, "test": 2}
    sample = catalog.split("train")[0]
    assert sample.bbox == (10, 5, 50, 45)
    tensor, _label, _ = ImageDataset([sample], lambda im: EvalPreset(32)(im) if im.size == (40, 40) else None)[0]
    assert tensor.shape == (3, 32, 32)  # the crop (40x40) reached the transform


def test_deepfashion_failures(tmp_path: Path) -> None:
    make_deepfashion(tmp_path / "a")
    labels = tmp_path / "a" / "Anno" / "list_category_img.txt"
    labels.write_text(labels.read_text().replace("01.jpg 3", "01.jpg 7", 1))
    with pytest.raises(DatasetError, match=r"not in 1\.\.3"):
        load_catalog(tmp_path / "a")
    make_deepfashion(tmp_path / "b")
    (tmp_path / "b" / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetError, match=r"list_eval_partition\.txt not found"):
        load_catalog(tmp_path / "b")
    make_deepfashion(tmp_path / "c")
    (tmp_path / "c" / "img" / "item_3" / "01.jpg").unlink()
    with pytest.raises(DatasetError, match="do not exist"):
        load_catalog(tmp_path / "c")
