"""Write a catalog feed for a folder-per-category photo set, to try feeds with real photos.

    uv run python docs/example_feed.py ../shared/datasets/clothing-small/validation --out var/feed.csv
    uv run lookalike import var/feed.csv --photos ../shared/datasets/clothing-small/validation

Two photos of a category per product (sku CATEGORY-NNNN); brand, price and a colour and size attribute
are made up, deterministically, so that the filters have something to filter. `--jsonl` writes JSON lines.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

BRANDS = ("acme", "zeta", "nord", "sol")
COLOURS = ("black", "white", "red", "blue", "green")
SIZES = (["s", "m"], ["m", "l"], ["l", "xl"])


def rows(root: Path) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p.relative_to(root).as_posix() for p in folder.glob("*.jpg"))
        for n in range(0, len(photos), 2):
            k = len(out)
            out.append(
                {
                    "sku": f"{folder.name.upper()}-{n // 2:04d}",
                    "title": f"{folder.name.replace('-', ' ').capitalize()} no. {n // 2 + 1}",
                    "category": folder.name,
                    "brand": BRANDS[k % len(BRANDS)],
                    "price": round(9.9 + (k * 7) % 90, 2),
                    "attributes": {"colour": COLOURS[k % len(COLOURS)], "size": SIZES[k % len(SIZES)]},
                    "images": photos[n : n + 2],
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photos", type=Path, help="a folder of <category>/<photo>.jpg")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jsonl", action="store_true")
    args = parser.parse_args()
    products = rows(args.photos)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="", encoding="utf-8") as fh:
        if args.jsonl:
            fh.writelines(json.dumps(row) + "\n" for row in products)
        else:
            writer = csv.DictWriter(fh, fieldnames=list(products[0]))
            writer.writeheader()
            for row in products:
                images = row["images"]
                assert isinstance(images, list)
                writer.writerow({**row, "attributes": json.dumps(row["attributes"]), "images": "|".join(images)})
    photos = sum(len(row["images"]) for row in products if isinstance(row["images"], list))
    print(f"{len(products)} products, {photos} photos: {args.out}")


if __name__ == "__main__":
    main()
