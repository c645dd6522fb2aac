"""Catalog feeds: a CSV or JSON-lines file of products, upserted by sku.

Columns (CSV) or keys (JSON lines): sku, title, category, brand, price, attributes (a JSON object), images
(paths relative to the feed's photos: `|`-separated in CSV, a list in JSON lines). For each row:

- a new sku is created with its photos;
- an existing sku gets the fields that differ, the photos it did not have (by content, sha256), and loses
  the photos the row no longer lists; a row that changes nothing writes nothing and embeds nothing;
- a bad row (missing sku, bad price or JSON, an unreadable photo, a sku repeated in the feed, with
  DUPLICATES=reject a duplicate photo) is skipped with its line number and reason; the rest goes in.

Products the feed does not name are left alone. `dry_run` reads and checks everything, writes nothing.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import zipfile
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, TypedDict

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from backend.config import Settings
from backend.core.extensions import DbSession
from backend.db.models import Product, ProductImage
from backend.db.products import ProductIn, add_product_photos, create_product, delete_photo, update_product
from backend.domain.photos import CheckedPhoto, ImageLimits, MediaStorage, check_photo
from backend.domain.products import ProductBase, product_fields
from backend.errors import DuplicatePhoto, DuplicateSku, FeedUnreadable, ImageRejected
from backend.services.duplicates import refuse_duplicates

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
FIELDS = ("sku", "title", "category", "brand", "price", "attributes", "url")
REQUIRED_COLUMNS = ("sku", "title", "category", "images")
MAX_ROW_ERRORS = 1000  # kept in the summary; the counts by reason cover every row
RowSchema = ProductBase.from_dict(product_fields(patch=False), name="FeedRow")


def feed_format(name: str) -> str:
    """csv or jsonl, by the file's extension."""
    fmt = FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise FeedUnreadable(f"{name}: a feed is a .csv or .jsonl file", field="feed")
    return fmt


class RowError(Exception):
    """Why a row is skipped: `kind` groups rows in the summary, the message says which value."""

    def __init__(self, kind: str, message: str, sku: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.sku = sku  # when a row that cannot be parsed still names one


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, Any]  # raw, as read
    images: list[str]


# Reading ----------------------------------------------------------------------------------------------


def check_utf8(stream: IO[bytes], chunk: int = 1 << 20) -> None:
    """The whole feed is UTF-8, checked before its first row is read (then rewound): a bad byte past the first
    8 KB was found only after the rows before it had been written. FeedUnreadable names the byte's offset."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while True:
        block = stream.read(chunk)
        pending = len(decoder.getstate()[0])  # the bytes of a character cut by the last block
        try:
            decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            at = offset - pending + exc.start
            raise FeedUnreadable(f"the feed is not UTF-8 text ({exc.reason} at byte {at})", field="feed") from None
        if not block:
            break
        offset += len(block)
    stream.seek(0)


def read_rows(stream: IO[bytes], fmt: str) -> Iterator[Row | tuple[int, RowError]]:
    """The feed's rows with their first line number; a row that cannot be parsed comes as (line, RowError)."""
    check_utf8(stream)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    try:
        yield from _csv_rows(text) if fmt == "csv" else _jsonl_rows(text)
    except UnicodeDecodeError as exc:
        raise FeedUnreadable(f"the feed is not UTF-8 text ({exc.reason} at byte {exc.start})", field="feed") from exc
    finally:
        text.detach()


class _CsvLines:
    """The feed's lines for the CSV reader, numbered, with those of the record being read kept: a record that
    cannot be read is reported at its first line and reading goes on from the line after it (a quote that is
    never closed would otherwise swallow the rest of the feed as one value)."""

    def __init__(self, text: IO[str]) -> None:
        self._text = text
        self._again: deque[tuple[int, str]] = deque()
        self._record: list[tuple[int, str]] = []
        self._number = 0

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self._again:
            number, line = self._again.popleft()
        else:
            line = next(self._text)
            self._number += 1
            number = self._number
        self._record.append((number, line))
        return line

    def next_record(self) -> int:
        """The line the next record starts on; forgets the record just read."""
        self._record = []
        return self._again[0][0] if self._again else self._number + 1

    def last_line(self) -> int:
        """The last line the record just read reached."""
        return self._record[-1][0] if self._record else self._number

    def read_again_after_first(self) -> None:
        """The record just read was bad: its lines after the first are read again, as the next records."""
        self._again.extendleft(reversed(self._record[1:]))
        self._record = []


def _csv_rows(text: IO[str]) -> Iterator[Row | tuple[int, RowError]]:
    lines = _CsvLines(text)
    # strict: a quote opened and never closed is an error at the end of the data, not the rest of the feed
    reader = csv.DictReader(lines, strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise FeedUnreadable(f"the CSV header cannot be read: {exc}", field="feed") from exc
    if not header:
        raise FeedUnreadable("the feed is empty", field="feed")
    repeated = sorted({c.strip() for c in header if c and [h.strip() for h in header if h].count(c.strip()) > 1})
    if repeated:  # DictReader keeps the last column of a name: the others' values would vanish
        raise FeedUnreadable(f"the CSV header names {', '.join(repeated)} more than once", field="feed")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise FeedUnreadable(
            f"the CSV header lacks {', '.join(missing)} (it has: {', '.join(h for h in header if h)})", field="feed"
        )
    while True:
        start = lines.next_record()
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            reason, end = str(exc), lines.last_line()
            if reason == "unexpected end of data" or "field limit" in reason:
                limit = csv.field_size_limit()
                reason = f"a quoted value opened on this line is never closed, or is over {limit} characters"
            elif end > start:
                reason += f" on line {end}: is a quote opened on this line never closed?"
            yield start, RowError("bad CSV", f"cannot be read as CSV: {reason}")
            lines.read_again_after_first()
            continue
        if None in record:
            yield start, RowError("bad CSV", f"{len(record[None])} more values than the header has columns")
            continue
        values = {k: v.strip() for k, v in record.items() if k in FIELDS and v is not None and v.strip() != ""}
        if "attributes" in values:
            try:
                values["attributes"] = json.loads(values["attributes"])
            except ValueError as exc:
                yield start, RowError("bad JSON", f"attributes: not JSON ({exc})", values.get("sku"))
                continue
        images = [p.strip() for p in (record.get("images") or "").split("|") if p.strip()]
        yield Row(start, values, images)


def _jsonl_rows(text: IO[str]) -> Iterator[Row | tuple[int, RowError]]:
    for number, raw in enumerate(text, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except ValueError as exc:
            yield number, RowError("bad JSON", f"not a JSON object ({exc})")
            continue
        if not isinstance(record, dict):
            yield number, RowError("bad JSON", "not a JSON object")
            continue
        images = record.get("images", [])
        if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
            sku = record.get("sku")
            yield number, RowError("bad JSON", "images: must be a list of paths", sku if isinstance(sku, str) else None)
            continue
        values = {k: v for k, v in record.items() if k in FIELDS and v is not None and v != ""}
        yield Row(number, values, [p.strip() for p in images if p.strip()])


# Photos -----------------------------------------------------------------------------------------------


UNSAFE = re.compile(r"[^A-Za-z0-9._\-]+")


def sku_for(category: str, path: Path) -> str:
    """A folder photo's sku: `<category>-<file stem>`, safe characters only."""
    return UNSAFE.sub("-", f"{category}-{path.stem}").strip("-.")[:64]


def tree_rows(root: Path) -> Iterator[Row | tuple[int, RowError]]:
    """A folder of ROOT/<category>/<photo> as feed rows, in a stable order: one product per photo, its category
    the folder's name, its sku `sku_for`, its title `<category> <file stem>`. A file directly under ROOT is a
    skipped row; hidden files and folders are left out. `line` counts the files."""
    number = 0
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            number += 1
            yield number, RowError("not inside a category folder", f"{entry.name}: not inside a category folder")
            continue
        for path in sorted(entry.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.relative_to(entry).parts):
                continue
            number += 1
            category = entry.name
            values = {"sku": sku_for(category, path), "title": f"{category} {path.stem}"[:200], "category": category}
            yield Row(number, values, [path.relative_to(root).as_posix()])


class PhotoSource(Protocol):
    """Where a feed's photo paths point: a folder, or a zip sent with the feed."""

    def read(self, path: str, limit: int) -> bytes:
        """At most `limit + 1` bytes of the photo; RowError when it cannot be read."""


def _relative(path: str) -> str:
    """A path inside the photos' root, in POSIX form; RowError for one that leaves it."""
    clean = posixpath.normpath(path.replace("\\", "/"))
    if path.startswith(("/", "\\")) or clean == ".." or clean.startswith("../") or ":" in clean.split("/")[0]:
        raise RowError("unreadable photo", f"{path}: photo paths are relative to the feed and stay inside it")
    return clean


class FolderPhotos:
    """Photos under a folder. `confined`: a path must stay inside it after links are followed (a feed's paths);
    a folder walked by `tree_rows` may link to photos elsewhere."""

    def __init__(self, root: Path, *, confined: bool = True) -> None:
        self.root = root.resolve()
        self.confined = confined

    def read(self, path: str, limit: int) -> bytes:
        target = (self.root / _relative(path)).resolve()
        if self.confined and not target.is_relative_to(self.root):
            raise RowError("unreadable photo", f"{path}: photo paths are relative to the feed and stay inside it")
        try:
            # Non-blocking, then only a regular file: opening a named pipe waited for a writer for ever.
            fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise RowError("unreadable photo", f"{path}: no such file") from None
        except OSError as exc:
            raise RowError("unreadable photo", f"{path}: cannot be read ({type(exc).__name__})") from None
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RowError("unreadable photo", f"{path}: not a regular file")
            try:
                return fh.read(limit + 1)
            except OSError as exc:
                raise RowError("unreadable photo", f"{path}: cannot be read ({type(exc).__name__})") from None


class ZipPhotos:
    def __init__(self, path: Path) -> None:
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise FeedUnreadable(f"the photos are not a readable zip file ({exc})", field="photos") from exc
        self.names = {posixpath.normpath(n): n for n in self.zip.namelist() if not n.endswith("/")}

    def read(self, path: str, limit: int) -> bytes:
        name = self.names.get(_relative(path))
        if name is None:
            raise RowError("unreadable photo", f"{path}: not in the zip")
        try:
            with self.zip.open(name) as fh:
                return fh.read(limit + 1)  # never more, whatever the zip's header claims
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            raise RowError("unreadable photo", f"{path}: cannot be read from the zip ({exc})") from None


# Planning and applying ---------------------------------------------------------------------------------


class SummaryCounts(TypedDict):
    """An import's counts, as the API's import run and the pages show them."""

    rows: int
    created: int
    updated: int
    unchanged: int
    skipped: int
    skipped_by_reason: dict[str, int]
    photos_added: int
    photos_removed: int


@dataclass
class FeedSummary:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    photos_added: int = 0
    photos_removed: int = 0
    image_ids: list[int] = field(default_factory=list)  # photos queued for embedding

    def skip(self, line: int, sku: str | None, error: RowError) -> None:
        self.skipped[error.kind] += 1
        if len(self.errors) < MAX_ROW_ERRORS:
            self.errors.append({"line": line, "sku": sku, "reason": error.kind, "message": str(error)})

    def as_dict(self) -> SummaryCounts:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "skipped": sum(self.skipped.values()),
            "skipped_by_reason": dict(self.skipped.most_common()),
            "photos_added": self.photos_added,
            "photos_removed": self.photos_removed,
        }


@dataclass
class Plan:
    """What one row changes: nothing, a new product, or fields and photos of an existing one."""

    product_in: ProductIn
    existing: Product | None
    changes: dict[str, Any]
    add: list[CheckedPhoto]
    remove: list[ProductImage]

    @property
    def unchanged(self) -> bool:
        return self.existing is not None and not (self.changes or self.add or self.remove)


def _product_in(row: Row) -> ProductIn:
    if not row.values.get("sku"):
        raise RowError("missing sku", "sku: missing")
    try:
        loaded = RowSchema().load(row.values)
    except ValidationError as exc:
        name, messages = next(iter(exc.normalized_messages().items()))
        text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        kind = f"missing {name}" if "required" in text.lower() else f"bad {name}"
        raise RowError(kind, f"{name}: {text}") from None
    return ProductIn(**loaded)


def plan_row(*, session: DbSession, settings: Settings, photos: PhotoSource, row: Row) -> Plan:
    """Check one row against the catalog; RowError when it must be skipped. Reads every photo, decodes only
    the ones the product does not have yet."""
    product_in = _product_in(row)
    if not row.images:
        raise RowError("no photos", "images: at least one photo is required")
    if len(row.images) > settings.max_images_per_request:
        raise RowError("too many photos", f"images: at most {settings.max_images_per_request} photos per product")
    existing = session.scalar(
        select(Product).where(Product.sku == product_in.sku).options(selectinload(Product.images))
    )
    have = {image.sha256: image for image in existing.images} if existing is not None else {}
    listed: set[str] = set()
    add: list[CheckedPhoto] = []
    for path in row.images:
        data = photos.read(path, settings.max_upload_bytes)
        sha = hashlib.sha256(data).hexdigest()
        if sha in listed:
            continue  # the same photo twice in a row
        listed.add(sha)
        if sha in have:
            continue
        try:
            add.append(
                check_photo(
                    data,
                    filename=posixpath.basename(path),
                    limits=ImageLimits.of(settings),
                )
            )
        except ImageRejected as exc:
            reason = exc.message.removeprefix(posixpath.basename(path) + ": ")
            raise RowError("unreadable photo", f"{path}: {reason}") from None
    changes: dict[str, Any] = {}
    if existing is not None:
        wanted = {
            "title": product_in.title,
            "category": product_in.category,
            "brand": product_in.brand,
            "price": product_in.price,
            "attributes": product_in.attributes or {},
            "url": product_in.url,
        }
        changes = {k: v for k, v in wanted.items() if getattr(existing, k) != v}  # prices: Decimal both sides
    remove = [image for sha, image in have.items() if sha not in listed]
    try:
        refuse_duplicates(
            session=session, settings=settings, images=add, product_id=existing.id if existing is not None else None
        )
    except DuplicatePhoto as exc:
        raise RowError("duplicate photo", exc.message) from None
    return Plan(product_in, existing, changes, add, remove)


@dataclass
class Effects:
    """What applying a row hands to the pipeline after its commit."""

    embed: list[int] = field(default_factory=list)
    payload_sync: list[int] = field(default_factory=list)
    point_deletes: list[int] = field(default_factory=list)


def apply_plan(*, session: DbSession, storage: MediaStorage, plan: Plan, effects: Effects) -> None:
    if plan.existing is None:
        product = create_product(session=session, storage=storage, product_in=plan.product_in, images=plan.add)
        effects.embed += [image.id for image in product.images]
        return
    product = plan.existing
    if plan.changes:
        _, payload_changed = update_product(session=session, product=product, changes=plan.changes)
        if payload_changed:
            effects.payload_sync.append(product.id)
    if plan.add:
        effects.embed += [
            image.id for image in add_product_photos(session=session, storage=storage, product=product, images=plan.add)
        ]
    for image in plan.remove:
        effects.point_deletes += delete_photo(session=session, storage=storage, image=image)


@dataclass
class Handoff:
    """The pipeline calls an import makes (the enqueue functions; no-ops for tests that want none)."""

    embed: Callable[[list[int]], None]
    payload_sync: Callable[[int], None]
    point_deletes: Callable[[list[int]], None]


def import_rows(
    *,
    session: DbSession,
    settings: Settings,
    rows: Iterable[Row | tuple[int, RowError]],
    photos: PhotoSource,
    handoff: Handoff,
    dry_run: bool = False,
    progress: Callable[[int], None] = lambda n: None,
    summary: FeedSummary | None = None,
) -> FeedSummary:
    """Upsert every row (of `read_rows` or `tree_rows`): the one write path of every import. Photos are queued
    for embedding in batches. FeedUnreadable when a feed itself cannot be read (before any row is written: the
    header is read first). `summary` is filled as rows
    go (a caller may show it while the import runs)."""
    summary = summary if summary is not None else FeedSummary()
    storage = MediaStorage(settings.media_root)
    seen: dict[str, int] = {}
    effects = Effects()
    for item in rows:
        summary.rows += 1
        progress(1)
        if isinstance(item, tuple):
            summary.skip(item[0], item[1].sku, item[1])
            continue
        sku = item.values.get("sku")
        sku = sku if isinstance(sku, str) else None
        try:
            if sku is not None and sku in seen:
                raise RowError("repeated sku", f"sku {sku!r} is already on line {seen[sku]} of this feed")
            plan = plan_row(session=session, settings=settings, photos=photos, row=item)
            if sku is not None:
                seen[sku] = item.line
            if plan.unchanged:
                summary.unchanged += 1
            else:
                if not dry_run:
                    apply_plan(session=session, storage=storage, plan=plan, effects=effects)
                summary.created += plan.existing is None
                summary.updated += plan.existing is not None
                summary.photos_added += len(plan.add)
                summary.photos_removed += len(plan.remove)
        except RowError as exc:
            session.rollback()
            summary.skip(item.line, sku, exc)
            continue
        except DuplicateSku as exc:  # created by someone else since this row was checked
            session.rollback()
            summary.skip(item.line, sku, RowError("repeated sku", exc.message))
            continue
        finally:
            session.expire_all()  # the next row reads the catalog as it is now
        _hand_off(effects, handoff, settings.embed_batch_size, summary)
    _hand_off(effects, handoff, 1, summary)
    return summary


def _hand_off(effects: Effects, handoff: Handoff, batch: int, summary: FeedSummary) -> None:
    if len(effects.embed) >= batch:
        summary.image_ids += effects.embed
        handoff.embed(effects.embed)
        effects.embed = []
    for product_id in effects.payload_sync:
        handoff.payload_sync(product_id)
    effects.payload_sync = []
    if effects.point_deletes:
        handoff.point_deletes(effects.point_deletes)
        effects.point_deletes = []


def count_rows(path: Path) -> int:
    """About how many rows a feed has (its non-blank lines less a CSV header): the progress bar's total."""
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return max(0, lines - 1) if feed_format(path.name) == "csv" else lines
