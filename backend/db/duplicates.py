"""Data access for duplicate photos: pairs of photos of different products that are the same file or a
near-copy. A pair is stored once, the newer photo first; the database deletes it with either photo."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, or_, select

from backend.core.extensions import DbSession
from backend.db.driver import driver_rows
from backend.db.models import PhotoDuplicate, Product, ProductImage, duplicate_list

# A new photo is paired with at most this many stored photos of the same file (the oldest): one placeholder photo
# shared by 600 products made 179,703 pairs when every copy was paired with every other. The copies stay one
# group (the duplicates page) as long as one of those survives.
SAME_FILE_LINKS = 5


def link_same_files(session: DbSession, images: Sequence[ProductImage]) -> int:
    """Pair each new (flushed) photo of one product with the oldest SAME_FILE_LINKS stored photos of other products
    that have its sha256; not committed."""
    if not images:
        return 0
    found = same_file_photos(session, [image.sha256 for image in images], images[0].product_id)
    pairs = [(image.id, other, 0.0) for image in images for _, other in found.get(image.sha256, [])[:SAME_FILE_LINKS]]
    return record_pairs(session, pairs, same_file=True)


def same_file_photos(
    session: DbSession, sha256s: Iterable[str], exclude_product_id: int | None
) -> dict[str, list[tuple[int, int]]]:
    """Stored photos of other products by sha256: {sha256: [(product_id, image_id)]}."""
    query = select(ProductImage.sha256, ProductImage.product_id, ProductImage.id).where(
        ProductImage.sha256.in_(list(set(sha256s)))
    )
    if exclude_product_id is not None:
        query = query.where(ProductImage.product_id != exclude_product_id)
    found: dict[str, list[tuple[int, int]]] = {}
    for sha, product_id, image_id in session.execute(query.order_by(ProductImage.id)):
        found.setdefault(sha, []).append((product_id, image_id))
    return found


def record_pairs(session: DbSession, pairs: Iterable[tuple[int, int, float]], *, same_file: bool = False) -> int:
    """Store pairs (either order) not stored yet, the newer photo first; returns how many are new. Not committed."""
    wanted: dict[tuple[int, int], float] = {}
    for a, b, distance in pairs:
        if a != b:
            key = (max(a, b), min(a, b))
            wanted[key] = min(distance, wanted.get(key, distance))
    if not wanted:
        return 0
    ids = {i for pair in wanted for i in pair}
    query = select(PhotoDuplicate.image_id, PhotoDuplicate.other_id).where(PhotoDuplicate.image_id.in_(list(ids)))
    stored = {(image_id, other_id) for image_id, other_id in session.execute(query)}
    new = [(key, distance) for key, distance in wanted.items() if key not in stored]
    for (image_id, other_id), distance in new:
        session.add(PhotoDuplicate(image_id=image_id, other_id=other_id, distance=distance, same_file=same_file))
    return len(new)


# Built once: on the similar-items hot path, building the statement cost more than running it.
_PAIRS_OF = select(PhotoDuplicate.image_id, PhotoDuplicate.other_id, PhotoDuplicate.distance).where(
    or_(
        PhotoDuplicate.image_id.in_(bindparam("ids", expanding=True)),
        PhotoDuplicate.other_id.in_(bindparam("ids", expanding=True)),
    )
)


def duplicates_by_photo(
    session: DbSession, image_ids: Sequence[int], products: Mapping[int, int] | None = None
) -> dict[int, list[dict[str, Any]]]:
    """`duplicate_of` for many photos in one query (the similar-items hot path); `products` (photo -> product) saves
    looking up the products of photos the caller already knows."""
    if not image_ids:
        return {}
    ids = list(image_ids)
    pairs = driver_rows(session, _PAIRS_OF, {"ids": ids})
    if not pairs:
        return {}
    owner = dict(products or {})
    unknown = {i for pair in pairs for i in pair[:2]} - owner.keys()
    if unknown:
        owner |= dict(
            session.execute(select(ProductImage.id, ProductImage.product_id).where(ProductImage.id.in_(unknown))).all()
        )
    wanted = set(ids)
    found: dict[int, list[tuple[int, int, float]]] = {}
    for image_id, other_id, distance in pairs:
        for mine, theirs in ((image_id, other_id), (other_id, image_id)):
            if mine in wanted and theirs in owner:
                found.setdefault(mine, []).append((owner[theirs], theirs, distance))
    return {image_id: duplicate_list(items) for image_id, items in found.items()}


def duplicate_groups(session: DbSession) -> list[dict[str, Any]]:
    """Every set of photos linked by duplicate pairs, each with its photos (and their products) and its pairs;
    groups ordered by their first photo."""
    pairs = list(
        session.execute(select(PhotoDuplicate).order_by(PhotoDuplicate.other_id, PhotoDuplicate.image_id)).scalars()
    )
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for pair in pairs:
        a, b = root(pair.image_id), root(pair.other_id)
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(root(i), []).append(i)
    photos = {
        image_id: (product_id, sku, stored_name)
        for image_id, product_id, sku, stored_name in session.execute(
            select(ProductImage.id, ProductImage.product_id, Product.sku, ProductImage.stored_name)
            .join(Product, Product.id == ProductImage.product_id)
            .where(ProductImage.id.in_(list(parent)))
        )
    }
    groups = []
    for first in sorted(members):
        ids = sorted(members[first])
        groups.append(
            {
                "photos": [
                    {"image_id": i, "product_id": photos[i][0], "sku": photos[i][1], "stored_name": photos[i][2]}
                    for i in ids
                    if i in photos
                ],
                "pairs": [
                    {
                        "image_id": p.image_id,
                        "other_id": p.other_id,
                        "distance": round(p.distance, 6),
                        "same_file": p.same_file,
                    }
                    for p in pairs
                    if root(p.image_id) == first
                ],
            }
        )
    return groups
