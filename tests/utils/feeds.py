"""Catalog feeds of real clothing-small photos, as a shop's export would be: CSV or JSON lines."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.utils.datasets import photos_of

COLUMNS = ["sku", "title", "category", "brand", "price", "attributes", "images"]


def feed_rows(per_category: int = 2, categories: tuple[str, ...] = ("dress", "hat", "shoes")) -> list[dict[str, Any]]:
    """Products of two real photos each; photo paths relative to the feed's folder (photos/<category>/...)."""
    rows = []
    for category in categories:
        photos = photos_of(category, 2 * per_category)
        for n in range(per_category):
            pair = photos[2 * n : 2 * n + 2]
            rows.append(
                {
                    "sku": f"{category.upper()}-{n}",
                    "title": f"{category} number {n}",
                    "category": category,
                    "brand": "acme" if n % 2 else "zeta",
                    "price": 10 + n,
                    "attributes": {"colour": "red" if n % 2 else "blue", "size": ["m", "l"]},
                    "images": [f"photos/{category}/{p.name}" for p in pair],
                    "_sources": pair,
                }
            )
    return rows


def copy_photos(rows: list[dict[str, Any]], folder: Path) -> None:
    for row in rows:
        for path, source in zip(row["images"], row.get("_sources", []), strict=False):
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / path)


def write_csv(path: Path, rows: list[dict[str, Any]], *, raw: Sequence[str] = ()) -> Path:
    """The rows as CSV (attributes as JSON text, photos `|`-separated); `raw` lines are appended as they are."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    **row,
                    "attributes": json.dumps(row["attributes"])
                    if isinstance(row.get("attributes"), dict)
                    else row.get("attributes", ""),
                    "images": "|".join(row["images"]),
                }
            )
        for line in raw:
            fh.write(line + "\r\n")
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]], *, raw: Sequence[str] = ()) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}) + "\n")
        for line in raw:
            fh.write(line + "\n")
    return path
