"""Data access for products and photos. Routes and the importer call these; they take the session."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from backend.core.extensions import DbSession
from backend.db.duplicates import link_same_files
from backend.db.models import ImageStatus, Product, ProductImage
from backend.domain.photos import CheckedPhoto, MediaStorage
from backend.errors import DuplicateSku, NotFound

log = logging.getLogger(__name__)

PAYLOAD_FIELDS = ("category", "brand", "price", "attributes")  # what the points carry (attributes: the declared)


@dataclass(frozen=True)
class ProductIn:
    sku: str
    title: str
    category: str
    brand: str | None = None
    price: Decimal | None = None
    attributes: dict[str, Any] | None = None
    url: str | None = None


# Ids are 32-bit integer columns: a larger id is simply not there (PostgreSQL would refuse to compare it).
MAX_ID = 2**31 - 1


def get_product(*, session: DbSession, product_id: int) -> Product:
    if not 0 < product_id <= MAX_ID:
        raise NotFound(f"product {product_id} not found")
    product = session.get(Product, product_id, options=[selectinload(Product.images)])
    if product is None:
        raise NotFound(f"product {product_id} not found")
    return product


def get_photo(*, session: DbSession, image_id: int) -> ProductImage:
    if not 0 < image_id <= MAX_ID:
        raise NotFound(f"image {image_id} not found")
    image = session.get(ProductImage, image_id)
    if image is None:
        raise NotFound(f"image {image_id} not found")
    return image


def product_id_of(*, session: DbSession, sku: str) -> int:
    """The id of the product with this sku; NotFound naming the sku."""
    found = session.scalar(select(Product.id).where(Product.sku == sku))
    if found is None:
        raise NotFound(f"no product with sku {sku!r}", field="sku")
    return found


def sku_taken(*, session: DbSession, sku: str) -> bool:
    return session.scalar(select(func.count()).where(Product.sku == sku)) != 0


def _store_photos(
    *, session: DbSession, storage: MediaStorage, product: Product, images: Sequence[CheckedPhoto]
) -> tuple[list[str], list[ProductImage]]:
    stored: list[str] = []
    rows: list[ProductImage] = []
    for checked in images:
        name = storage.save(checked)
        stored.append(name)
        rows.append(
            ProductImage(
                stored_name=name,
                original_filename=checked.original_filename,
                sha256=checked.sha256,
                width=checked.width,
                height=checked.height,
                content_type=checked.content_type,
                size_bytes=len(checked.data),
                status=ImageStatus.pending,
                attempts=0,
            )
        )
        product.images.append(rows[-1])
    return stored, rows


def _commit_or_undo(
    *, session: DbSession, storage: MediaStorage, stored: list[str], sku: str, new: Sequence[ProductImage]
) -> None:
    """Pair the new photos with same-file copies of other products, and commit; on failure remove the files
    written for this request so nothing is left half-done."""
    try:
        session.flush()
        link_same_files(session, new)
        session.commit()
    except BaseException as exc:
        session.rollback()
        for name in stored:
            storage.delete(name)
        if isinstance(exc, IntegrityError):
            raise DuplicateSku(sku) from exc
        raise


def create_product(
    *, session: DbSession, storage: MediaStorage, product_in: ProductIn, images: Sequence[CheckedPhoto]
) -> Product:
    """Create a product and its photos (status pending) in one transaction."""
    if sku_taken(session=session, sku=product_in.sku):
        raise DuplicateSku(product_in.sku)
    product = Product(
        sku=product_in.sku,
        title=product_in.title,
        category=product_in.category,
        brand=product_in.brand,
        price=product_in.price,
        attributes=product_in.attributes or {},
        url=product_in.url,
    )
    session.add(product)
    stored, new = _store_photos(session=session, storage=storage, product=product, images=images)
    _commit_or_undo(session=session, storage=storage, stored=stored, sku=product_in.sku, new=new)
    return product


def add_product_photos(
    *, session: DbSession, storage: MediaStorage, product: Product, images: Sequence[CheckedPhoto]
) -> list[ProductImage]:
    before = {image.id for image in product.images}
    stored, new = _store_photos(session=session, storage=storage, product=product, images=images)
    _commit_or_undo(session=session, storage=storage, stored=stored, sku=product.sku, new=new)
    return [image for image in product.images if image.id not in before]


def update_product(*, session: DbSession, product: Product, changes: Mapping[str, Any]) -> tuple[Product, bool]:
    """Apply field changes; returns the product and whether its points' payload must follow."""
    if "sku" in changes and changes["sku"] != product.sku and sku_taken(session=session, sku=changes["sku"]):
        raise DuplicateSku(changes["sku"])
    payload_changed = any(k in changes and changes[k] != getattr(product, k) for k in PAYLOAD_FIELDS)
    for key, value in changes.items():
        setattr(product, key, value)
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateSku(changes.get("sku")) from exc
    return product, payload_changed


def delete_product(*, session: DbSession, storage: MediaStorage, product: Product) -> list[int]:
    """Delete the rows first (the record of truth) and the files; returns the image ids whose points must go."""
    ids = [image.id for image in product.images]
    names = [image.stored_name for image in product.images]
    session.delete(product)
    session.commit()
    for name in names:
        storage.delete(name)
    return ids


def delete_photo(*, session: DbSession, storage: MediaStorage, image: ProductImage) -> list[int]:
    image_id, name = image.id, image.stored_name
    session.delete(image)
    session.commit()
    storage.delete(name)
    return [image_id]


@dataclass(frozen=True)
class ProductFilter:
    """Which products a list shows: any of these categories and brands, a price range, or the one with a sku."""

    categories: Sequence[str] = ()
    brands: Sequence[str] = ()
    price_min: float | None = None
    price_max: float | None = None
    sku: str | None = None


def list_products(
    *, session: DbSession, page: int, per_page: int, where: ProductFilter = ProductFilter(), newest_first: bool = False
) -> tuple[list[Product], int]:
    query = select(Product)
    if where.sku is not None:  # a client whose connection broke finds out whether its product was kept
        query = query.where(Product.sku == where.sku)
    if where.categories:
        query = query.where(Product.category.in_(list(where.categories)))
    if where.brands:
        query = query.where(Product.brand.in_(list(where.brands)))
    if where.price_min is not None:
        query = query.where(Product.price >= where.price_min)
    if where.price_max is not None:
        query = query.where(Product.price <= where.price_max)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    order = Product.id.desc() if newest_first else Product.id
    items = session.scalars(
        query.options(selectinload(Product.images)).order_by(order).offset((page - 1) * per_page).limit(per_page)
    ).all()
    return list(items), total


def facets(*, session: DbSession) -> tuple[list[str], list[str]]:
    """The categories and brands in the catalog, sorted: the choices of the pages' filters."""
    categories = session.scalars(select(Product.category).distinct().order_by(Product.category))
    brands = session.scalars(select(Product.brand).where(Product.brand.is_not(None)).distinct().order_by(Product.brand))
    return list(categories), [b for b in brands if b]


def photo_status_counts(*, session: DbSession, product_id: int | None = None) -> dict[str, int]:
    query = select(ProductImage.status, func.count()).group_by(ProductImage.status)
    if product_id is not None:
        query = query.where(ProductImage.product_id == product_id)
    counts = {status.value: 0 for status in ImageStatus}
    counts.update({status: n for status, n in session.execute(query).all()})
    return counts
