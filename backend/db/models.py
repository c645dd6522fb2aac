"""Database models: PostgreSQL (or SQLite) is the record of truth; Qdrant only mirrors it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    TypeDecorator,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from backend.core.extensions import db
from backend.domain.products import URL_MAX
from ml.versions import DESCRIPTORS

JsonType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend (SQLite stores no offset and returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use an aware UTC datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ImageStatus(StrEnum):
    pending = "pending"
    indexed = "indexed"
    failed = "failed"


class FailureKind(StrEnum):
    transient = "transient"  # the store or the database was down: the sweep retries
    permanent = "permanent"  # the photo itself


class CollectionState(StrEnum):
    building = "building"  # a reindex is filling it; never queried
    active = "active"  # the one collection queries and new photos use
    retired = "retired"  # replaced by a reindex; dropped once no process holds it
    experiment = "experiment"  # live beside the active one: an arm of the running A/B test answers from it


def text_enum(enum: type[StrEnum]) -> Enum:
    """An enum stored as its values in a VARCHAR(16), as the migrations made the columns (no CHECK, no type)."""
    return Enum(
        enum, native_enum=False, create_constraint=False, length=16, values_callable=lambda e: [m.value for m in e]
    )


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (CheckConstraint("price IS NULL OR price >= 0", name="price_not_negative"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sku: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(64), index=True)
    brand: Mapped[str | None] = mapped_column(String(64), index=True)
    price: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    url: Mapped[str | None] = mapped_column(String(URL_MAX))  # the product's page on the shop's site
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    images: Mapped[list[ProductImage]] = relationship(
        back_populates="product",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ProductImage.id",
    )

    def index_payload(self, filter_attributes: Sequence[str] = ()) -> dict[str, Any]:
        """The fields every point of this product carries for filtering: category, brand, price, and under
        `attrs` the declared attributes (FILTER_ATTRIBUTES) as lists of folded strings."""
        return {
            "product_id": self.id,
            "category": self.category,
            "brand": self.brand,
            "price": float(self.price) if self.price is not None else None,
            "attrs": attribute_terms(self.attributes or {}, filter_attributes),
        }


def attribute_term(value: Any) -> str:
    """How an attribute value is matched: text trimmed and case-folded; numbers and booleans as JSON writes them."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.strip().casefold()


def attribute_terms(attributes: dict[str, Any], keys: Sequence[str]) -> dict[str, list[str]]:
    """The declared attributes of a product as match terms; a list value gives one term per plain item."""
    terms: dict[str, list[str]] = {}
    for key in keys:
        value = attributes.get(key)
        items = value if isinstance(value, list) else [value]
        found = sorted({attribute_term(v) for v in items if isinstance(v, str | int | float | bool)})
        if found:
            terms[key] = found
    return terms


class ProductImage(db.Model):
    __tablename__ = "product_images"
    __table_args__ = (Index("ix_product_images_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    stored_name: Mapped[str] = mapped_column(String(128), unique=True)
    original_filename: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    status: Mapped[ImageStatus] = mapped_column(text_enum(ImageStatus), default=ImageStatus.pending)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    model_version: Mapped[str | None] = mapped_column(String(80))
    failure_kind: Mapped[FailureKind | None] = mapped_column(text_enum(FailureKind))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A worker's lease on the photo while it embeds it: "host:pid:token" until claimed_until.
    claimed_by: Mapped[str | None] = mapped_column(String(160))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    indexed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    product: Mapped[Product] = relationship(back_populates="images")
    # Duplicate pairs this photo is part of, either side; the database deletes them with either photo.
    _copies_of_older: Mapped[list[PhotoDuplicate]] = relationship(
        foreign_keys="PhotoDuplicate.image_id", viewonly=True, lazy="selectin"
    )
    _copies_of_newer: Mapped[list[PhotoDuplicate]] = relationship(
        foreign_keys="PhotoDuplicate.other_id", viewonly=True, lazy="selectin"
    )

    @property
    def duplicate_of(self) -> list[dict[str, Any]]:
        """The photos of other products this one duplicates: same file (distance 0) or a near-copy, closest first."""
        found = [(d.other, d.distance) for d in self._copies_of_older]
        found += [(d.image, d.distance) for d in self._copies_of_newer]
        return duplicate_list((image.product_id, image.id, distance) for image, distance in found)


# `duplicate_of` lists at most this many, the closest first (the oldest copy of a file many products share is
# paired with all of them).
DUPLICATES_SHOWN = 10


def duplicate_list(found: Iterable[tuple[int, int, float]]) -> list[dict[str, Any]]:
    """`duplicate_of` as the API shows it, from (product_id, image_id, distance), the DUPLICATES_SHOWN closest."""
    ordered = sorted(found, key=lambda f: (f[2], f[1]))[:DUPLICATES_SHOWN]
    return [{"product_id": p, "image_id": i, "distance": round(d, 6)} for p, i, d in ordered]


class PhotoDuplicate(db.Model):
    """Two photos of different products that are the same file (distance 0) or a near-copy; stored once per
    pair, the newer photo first. Deleting either photo deletes the pair."""

    __tablename__ = "photo_duplicates"

    image_id: Mapped[int] = mapped_column(ForeignKey("product_images.id", ondelete="CASCADE"), primary_key=True)
    other_id: Mapped[int] = mapped_column(
        ForeignKey("product_images.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    distance: Mapped[float] = mapped_column(Float)
    same_file: Mapped[bool] = mapped_column(default=False)
    found_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    image: Mapped[ProductImage] = relationship(foreign_keys=[image_id], viewonly=True)
    other: Mapped[ProductImage] = relationship(foreign_keys=[other_id], viewonly=True)


class ImportState(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"  # the feed itself could not be read, or the run broke: `error` says why


class FeedImport(db.Model):
    """A catalog feed sent through the API: its progress, summary and per-row errors."""

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[ImportState] = mapped_column(text_enum(ImportState), default=ImportState.queued)
    feed_name: Mapped[str] = mapped_column(String(255))
    # Where the photos are: "zip" (sent with the feed) or "folder" (IMPORT_DIR).
    photos_from: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(default=False)
    rows_total: Mapped[int | None] = mapped_column(Integer)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JsonType, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who runs it (host:pid:thread:task) and when it last moved: the sweep fails an import whose process died.
    runner: Mapped[str | None] = mapped_column(String(160))
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IndexCollection(db.Model):
    """The vector collections, one per model version and build; the active row is the switch."""

    __tablename__ = "index_collections"
    __table_args__ = (
        # At most one active collection: the switch is one transaction on these rows.
        Index(
            "uq_index_collections_one_active",
            "state",
            unique=True,
            sqlite_where=text("state = 'active'"),
            postgresql_where=text("state = 'active'"),
        ),
    )

    name: Mapped[str] = mapped_column(String(160), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(80))
    state: Mapped[CollectionState] = mapped_column(text_enum(CollectionState))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    switched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # While building: how many photos the reindex has to embed, and how many it has done (the models page).
    photos_total: Mapped[int | None] = mapped_column(Integer)
    photos_done: Mapped[int | None] = mapped_column(Integer)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who builds it (host:pid:thread:task): the sweep drops a build whose process died.
    builder: Mapped[str | None] = mapped_column(String(160))
    # The descriptors' definition its vectors were made with (ml.versions.DESCRIPTORS); None: from before the record.
    descriptors: Mapped[int | None] = mapped_column(Integer, default=DESCRIPTORS)


class ModelVersion(db.Model):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(80), unique=True)
    path: Mapped[str] = mapped_column(Text)
    class_names: Mapped[list[str]] = mapped_column(JsonType, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JsonType, default=dict)
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AdminSession(db.Model):
    """A logged-in admin pages session, by the digest of the random id its signed cookie carries: logging out
    deletes it, so a copy of the cookie taken before stops working too."""

    __tablename__ = "admin_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class EventKind(StrEnum):
    impression = "impression"  # look-alikes shown for a product, in order
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"


class ShopperEvent(db.Model):
    """What a shopper did with the look-alikes shown (POST /api/v1/events): no personal data, a random visitor id.

    No foreign key to products: a product deleted later keeps its history."""

    __tablename__ = "shopper_events"
    __table_args__ = (Index("ix_shopper_events_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[EventKind] = mapped_column(text_enum(EventKind))
    query_product_id: Mapped[int] = mapped_column(Integer)  # the product whose look-alikes were shown
    product_id: Mapped[int | None] = mapped_column(Integer)  # the one acted on (not for an impression)
    position: Mapped[int | None] = mapped_column(Integer)  # its place in the row shown, from 1
    shown: Mapped[list[int]] = mapped_column(JsonType, default=list)  # an impression's products, in order
    shown_count: Mapped[int] = mapped_column(Integer, default=0)  # how many: the positions a click could take
    visitor: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(80))
    arm: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExperimentState(StrEnum):
    running = "running"
    stopped = "stopped"


class Experiment(db.Model):
    """A model A/B test: its arms (name, model version, weight, the collection that answers for it), when it ran,
    and the arm kept when it stopped."""

    __tablename__ = "experiments"
    __table_args__ = (
        # At most one running: a visitor is dealt an arm of the running one.
        Index(
            "uq_experiments_one_running",
            "state",
            unique=True,
            sqlite_where=text("state = 'running'"),
            postgresql_where=text("state = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[ExperimentState] = mapped_column(text_enum(ExperimentState))
    # [{"name": "A", "model_version": "...", "weight": 50, "collection": "..."}], in the order visitors are dealt
    arms: Mapped[list[dict[str, Any]]] = mapped_column(JsonType)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kept: Mapped[str | None] = mapped_column(String(40))
