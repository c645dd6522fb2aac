"""Training data from the catalog itself: category = label, the stored photos, split by product."""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import ImageStatus, Product, ProductImage
from backend.domain.photos import MediaStorage


@dataclass
class CatalogExport:
    manifest: Path
    categories: list[str] = field(default_factory=list)
    products: int = 0
    photos: dict[str, int] = field(default_factory=lambda: {"train": 0, "validation": 0})
    left_out: dict[str, int] = field(default_factory=dict)  # category -> its products, too few to train on


def export_catalog(
    *, session: DbSession, settings: Settings, out: Path, val_fraction: float, seed: int, min_products: int
) -> CatalogExport:
    """Write OUT/catalog.csv (path, category, split, product) for `lookalike train`.

    Whole products go to one side, so that no product has photos in both splits (photos of one product
    look alike: splitting them would measure recall of the same item, not of its category). A category
    with fewer than `min_products` products is left out. Failed photos (unreadable) are not used.
    """
    storage = MediaStorage(settings.media_root)
    rows = session.execute(
        select(Product.id, Product.category, ProductImage.stored_name)
        .join(ProductImage, ProductImage.product_id == Product.id)
        .where(ProductImage.status != ImageStatus.failed)
        .order_by(Product.id, ProductImage.id)
    ).all()
    photos: dict[str, dict[int, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for product_id, category, stored_name in rows:
        photos[category][product_id].append(storage.path(stored_name))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = CatalogExport(manifest=out / "catalog.csv")
    rng = random.Random(seed)
    lines: list[tuple[str, str, str, int]] = []
    for category in sorted(photos):
        products = sorted(photos[category])
        if len(products) < min_products:
            report.left_out[category] = len(products)
            continue
        rng.shuffle(products)
        n_val = max(1, round(len(products) * val_fraction))
        for i, product_id in enumerate(products):
            split = "validation" if i < n_val else "train"
            for path in photos[category][product_id]:
                lines.append((str(path.resolve()), category, split, product_id))
                report.photos[split] += 1
        report.categories.append(category)
        report.products += len(products)
    with report.manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "category", "split", "product"])
        writer.writerows(lines)
    return report
