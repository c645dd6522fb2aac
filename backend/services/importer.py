"""Bulk import of a folder-per-category tree: one product per photo, category = folder name."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.products import ProductIn, create_product, sku_taken
from backend.domain.photos import MediaStorage, check_image
from backend.errors import DuplicateSku, ImageRejected

UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


@dataclass
class ImportSummary:
    imported: int = 0
    image_ids: list[int] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, path: Path) -> None:
        self.skipped[reason] += 1
        self.examples.setdefault(reason, [])
        if len(self.examples[reason]) < 3:
            self.examples[reason].append(str(path))


def sku_for(category: str, path: Path) -> str:
    return UNSAFE.sub("-", f"{category}-{path.stem}").strip("-.")[:64]


def walk(root: Path, summary: ImportSummary) -> Iterator[tuple[str, Path]]:
    """(category, file) pairs in a stable order; stray top-level files are skipped with a reason."""
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            summary.skip("not inside a category folder", entry)
            continue
        for path in sorted(entry.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                yield entry.name, path


def import_tree(
    *,
    session: DbSession,
    settings: Settings,
    root: Path,
    enqueue: Callable[[list[int]], None],
    progress: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
) -> ImportSummary:
    """Create one product per photo under `root/<category>/`, enqueueing embeds in batches."""
    summary = ImportSummary()
    storage = MediaStorage(settings.media_root)
    files = list(walk(root, summary))
    on_total(len(files))
    batch: list[int] = []
    for category, path in files:
        progress(1)
        sku = sku_for(category, path)
        if len(category) > 64:
            summary.skip("category name longer than 64 characters", path)
            continue
        if sku_taken(session=session, sku=sku):
            summary.skip("already imported (same sku)", path)
            continue
        try:
            with path.open("rb") as fh:
                data = fh.read(settings.max_upload_bytes + 1)
            checked = check_image(
                data,
                filename=path.name,
                max_bytes=settings.max_upload_bytes,
                max_pixels=settings.max_image_pixels,
                max_aspect_ratio=settings.max_aspect_ratio,
            )
            product = create_product(
                session=session,
                storage=storage,
                product_in=ProductIn(sku=sku, title=f"{category} {path.stem}"[:200], category=category),
                images=[checked],
            )
        except (ImageRejected, DuplicateSku) as exc:
            summary.skip(exc.code, path)
            continue
        except OSError as exc:
            summary.skip(f"unreadable file ({type(exc).__name__})", path)
            continue
        summary.imported += 1
        ids = [image.id for image in product.images]
        summary.image_ids.extend(ids)
        batch.extend(ids)
        if len(batch) >= settings.embed_batch_size:
            enqueue(batch)
            batch = []
    if batch:
        enqueue(batch)
    return summary
