"""The similar-items use case: the nearest other products to a product, to one of its photos, or to a photo.

Routes parse, call one of the three functions here, and serialize. This module owns the policy (which
photos count, how a product with several photos queries, how hits become products); the index adapter
owns the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import select

from backend.config import ProductQuery, Settings
from backend.db.duplicates import duplicates_by_image
from backend.db.models import ImageStatus, Product, ProductImage, attribute_term
from backend.db.products import get_image, get_product, image_status_counts
from backend.errors import InvalidInput, NotFound, NotIndexed
from backend.extensions import DbSession
from backend.index import SearchFilter, VectorIndex
from backend.index.base import LOOK, LookQuery, Steer
from backend.media import CheckedImage, open_image
from backend.pipeline.active import Active, active_collection, active_index, index_of
from backend.pipeline.embedders import embedder_for
from ml.pixels import to_rgb

MAX_CANDIDATES = 20_000
MAX_STEERING = 10  # like and unlike products per query
DIVERSE_CANDIDATES = 100  # MMR picks from this many best points (more when a page needs them)


@dataclass(frozen=True)
class SimilarParams:
    """What the caller asks: a page of products, under filters on category, brand and price."""

    limit: int = 10
    offset: int = 0
    category: Sequence[str] = ()
    brand: Sequence[str] = ()
    price_min: float | None = None
    price_max: float | None = None
    max_distance: float | None = None
    # attr.<key>=<value> filters: values by key (OR within a key, AND across keys).
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # How much the look counts (0..1); None: LOOK_DEFAULT.
    look: float | None = None
    # "More like these, less like those" (product ids), and how varied the answer is (0..1, MMR).
    like: Sequence[int] = ()
    unlike: Sequence[int] = ()
    diverse: float | None = None

    @property
    def steered(self) -> bool:
        return bool(self.like or self.unlike or self.diverse)

    def search_filter(self, attribute_keys: Sequence[str] = ()) -> SearchFilter:
        """The index filter; InvalidInput for min above max, or for a key not declared in FILTER_ATTRIBUTES."""
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise InvalidInput("price_min", "must not be greater than price_max")
        for key in self.attributes:
            if key not in attribute_keys:
                declared = ", ".join(attribute_keys) or "none (FILTER_ATTRIBUTES is empty)"
                raise InvalidInput(f"attr.{key}", f"not a filter attribute; the declared ones: {declared}")
        return SearchFilter(
            categories=tuple(self.category),
            brands=tuple(self.brand),
            price_min=self.price_min,
            price_max=self.price_max,
            attributes=tuple(
                (key, tuple(dict.fromkeys(attribute_term(v) for v in values)))
                for key, values in sorted(self.attributes.items())
            ),
        )


@dataclass(frozen=True)
class Neighbour:
    product_id: int
    image_id: int
    distance: float


@dataclass
class SimilarItems:
    """The answer: each neighbour with its product (a plain dict, photos by stored name), and the model."""

    model_version: str
    items: list[tuple[Neighbour, dict[str, Any]]] = field(default_factory=list)


def similar_to_product(
    *, session: DbSession, settings: Settings, product_id: int, params: SimilarParams
) -> SimilarItems:
    """Products that look like this one, each once by its closest photo; NotIndexed while it has no vector."""
    # One collection per model: the query vectors and the points searched come from the same model.
    active = active_collection(session=session, settings=settings)
    where = params.search_filter(settings.attribute_keys)
    product = get_product(session=session, product_id=product_id)
    indexed = indexed_photo_ids(product, active)
    index, vectors = _stored_vectors(
        settings,
        active,
        indexed,
        lambda: NotIndexed(
            f"product {product_id} has no photo indexed by the active model yet",
            status=image_status_counts(session=session, product_id=product_id),
        ),
    )
    weight = look_weight(settings, index, params)
    looks = _stored_looks(index, indexed, weight, params)
    if settings.product_query is ProductQuery.mean:
        # As good as querying every photo on clothing-small, at one search (bench/multi_photo_query.py).
        vectors = [np.mean(np.asarray(vectors, dtype=np.float32), axis=0)]
        looks = [np.mean(np.asarray(looks, dtype=np.float32), axis=0)] if looks else None
    look = _look_query(settings, active, index, weight, looks)
    return _answer(session, active, index, vectors, exclude_product(where, product_id), params, look, looks)


def indexed_photo_ids(product: Product, active: Active) -> list[int]:
    """The product's photos that the database says are indexed by the active collection's model."""
    return [i.id for i in product.images if i.status == ImageStatus.indexed and i.model_version == active.model_version]


def similar_to_image(*, session: DbSession, settings: Settings, image_id: int, params: SimilarParams) -> SimilarItems:
    """Products that look like this one photo (its own product left out); NotIndexed while it has no vector."""
    active = active_collection(session=session, settings=settings)
    where = params.search_filter(settings.attribute_keys)
    image = get_image(session=session, image_id=image_id)
    indexed = image.status == ImageStatus.indexed and image.model_version == active.model_version
    index, vectors = _stored_vectors(
        settings,
        active,
        [image_id] if indexed else [],
        lambda: NotIndexed(
            f"photo {image_id} is not indexed by the active model yet", status=image.status, reason=image.error
        ),
    )
    weight = look_weight(settings, index, params)
    looks = _stored_looks(index, [image_id], weight, params)
    look = _look_query(settings, active, index, weight, looks)
    return _answer(session, active, index, vectors, exclude_product(where, image.product_id), params, look, looks)


@dataclass(frozen=True)
class Box:
    """A part of a photo, as fractions of its width and height from the top left."""

    x: float
    y: float
    w: float
    h: float


MIN_BOX_PIXELS = 8


def parse_box(text: str | None) -> Box | None:
    """`x,y,w,h` fractions inside the photo, w and h above 0; InvalidInput naming `box` otherwise."""
    if text is None or not text.strip():
        return None
    parts = text.split(",")
    try:
        values = [float(part) for part in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise InvalidInput("box", "four numbers x,y,w,h (fractions of the photo), for example 0.25,0.1,0.5,0.6")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise InvalidInput("box", "w and h must be above 0 (the box is empty)")
    slack = 1e-6
    if x < 0 or y < 0 or x + w > 1 + slack or y + h > 1 + slack:
        raise InvalidInput("box", "must lie inside the photo: x, y >= 0, x + w <= 1 and y + h <= 1")
    return Box(x, y, min(w, 1 - x), min(h, 1 - y))


def crop_to(image: Any, box: Box) -> Any:
    """The part of the photo as a person sees it (EXIF orientation applied) that `box` frames."""
    rgb = to_rgb(image)
    width, height = rgb.size
    left, top = round(box.x * width), round(box.y * height)
    right, bottom = round((box.x + box.w) * width), round((box.y + box.h) * height)
    if right - left < MIN_BOX_PIXELS or bottom - top < MIN_BOX_PIXELS:
        raise InvalidInput("box", f"frames {right - left}x{bottom - top} pixels: at least {MIN_BOX_PIXELS} a side")
    return rgb.crop((left, top, right, bottom))


def similar_to_photo(
    *, session: DbSession, settings: Settings, photo: CheckedImage, params: SimilarParams, box: Box | None = None
) -> SimilarItems:
    """Products that look like a photo that is not stored (a shopper's upload), or like a part of it (`box`)."""
    active, index = active_index(session=session, settings=settings)
    embedder = embedder_for(settings, active.model_version)
    image = open_image(photo.data, settings.max_image_pixels, settings.max_aspect_ratio)
    if box is not None:
        image = crop_to(image, box)
    described = embedder.describe([image])
    looks = [described.look[0].tolist()]
    look = _look_query(settings, active, index, look_weight(settings, index, params), looks)
    where = params.search_filter(settings.attribute_keys)
    return _answer(session, active, index, [described.embedding[0].tolist()], where, params, look, looks)


def look_weight(settings: Settings, index: VectorIndex, params: SimilarParams) -> float:
    """The look's weight for this query; NotIndexed when it is asked for on a collection without look vectors."""
    if params.steered:
        if params.look:
            raise InvalidInput(
                "look", "cannot be combined with like, unlike or diverse (they rank by the 1000-d vector)"
            )
        return 0.0
    if params.look is None:
        return settings.look_default if index.descriptors else 0.0  # a collection from before: as it was
    if params.look > 0 and not index.descriptors:
        raise NotIndexed(
            "look: the live collection was built before look vectors existed; `lookalike reindex` (or Activate"
            " on the models page) rebuilds it with them while queries go on"
        )
    return params.look


def _stored_looks(index: VectorIndex, image_ids: list[int], weight: float, params: SimilarParams) -> list[Any] | None:
    """The query photos' look vectors, where the look ranks (weight above 0) or like/unlike steer by it."""
    if weight == 0 and not (params.like or params.unlike):
        return None
    return list(index.named_vectors(image_ids, LOOK).values()) or None


def _look_query(
    settings: Settings, active: Active, index: VectorIndex, weight: float, looks: Sequence[Any] | None
) -> LookQuery | None:
    """The index's look ranking for these query looks, or None (weight 0, or photos without a look vector)."""
    if weight == 0 or not looks:
        return None
    embedding_scale, look_scale = look_scales(index, active.name, settings.look_candidates)
    return LookQuery(list(looks), weight, embedding_scale, look_scale, settings.look_candidates)


SCALE_SAMPLE = 32
SCALE_RECHECK_S = 60.0
# Per collection: (points when measured, when the count was last checked, embedding scale, look scale).
_scales: dict[str, tuple[int, float, float, float]] = {}


def look_scales(index: VectorIndex, name: str, candidates: int) -> tuple[float, float]:
    """Typical distances among a photo's candidates, by the 1000-d vector and by the look, in this collection.

    Measured once per collection and process on a sample of points, and again once the collection has doubled
    (its size looked at once a minute, not per query): the blend weighs the two distances by them, whatever
    the model's scale."""
    now = time.monotonic()
    known = _scales.get(name)
    if known is not None and now - known[1] < SCALE_RECHECK_S:
        return known[2], known[3]
    count = index.count()
    if known is not None and count < 2 * max(known[0], 1):
        _scales[name] = (known[0], now, known[2], known[3])
        return known[2], known[3]
    sample = index.sample_ids(SCALE_SAMPLE)
    vectors = index.vectors(sample)
    looks = index.named_vectors(sample, LOOK)
    by_vector: list[float] = []
    by_look: list[float] = []
    for image_id, vector in vectors.items():
        if image_id not in looks:
            continue
        nearest = index.search_batch([vector], limit=candidates + 1)[0][1:]
        by_vector += [hit.distance for hit in nearest]
        probe = LookQuery([looks[image_id]], 1.0, 1.0, 1.0, candidates + 1)
        by_look += [hit.distance for hit in index.search_batch([vector], limit=candidates + 1, look=probe)[0][1:]]
    embedding_scale = max(float(np.median(by_vector)), 1e-6) if by_vector else 1.0
    look_scale = max(float(np.median(by_look)), 1e-6) if by_look else 1.0
    _scales[name] = (count, now, embedding_scale, look_scale)
    return embedding_scale, look_scale


def _stored_vectors(
    settings: Settings, active: Active, image_ids: list[int], not_indexed: Callable[[], NotIndexed]
) -> tuple[VectorIndex, list[Any]]:
    """The stored vectors of photos the database says are indexed by the active model; `not_indexed()` is raised
    when there are none (the index is opened only when there are some)."""
    if image_ids:
        index = index_of(settings, active)
        vectors = list(index.vectors(image_ids).values())
        if vectors:
            return index, vectors
    raise not_indexed()


def _answer(
    session: DbSession,
    active: Active,
    index: VectorIndex,
    vectors: Sequence[Sequence[float]],
    where: SearchFilter,
    params: SimilarParams,
    look: LookQuery | None = None,
    looks: Sequence[Any] | None = None,
) -> SimilarItems:
    """Nearest products to the query vectors, their rows read in two queries."""
    if params.steered:
        neighbours = steered_products(session, active, index, vectors, where, params, looks)
    else:
        neighbours = nearest_products(
            index=index,
            vectors=vectors,
            where=where,
            limit=params.limit,
            offset=params.offset,
            max_distance=params.max_distance,
            look=look,
        )
    products = product_rows(session=session, product_ids=[n.product_id for n in neighbours])
    # A point whose product was deleted a moment ago is left out.
    items = [(n, products[n.product_id]) for n in neighbours if n.product_id in products]
    return SimilarItems(active.model_version, items)


def nearest_products(
    *,
    index: VectorIndex,
    vectors: Sequence[Sequence[float]],
    where: SearchFilter,
    limit: int,
    offset: int = 0,
    max_distance: float | None = None,
    look: LookQuery | None = None,
) -> list[Neighbour]:
    """The products ranked by their closest photo to any of the query vectors, exactly.

    Each query vector fetches its `fetch` nearest points. Let T be the smallest of the
    per-vector cut-off distances (infinite for a vector whose search came back short). Any
    product not yet seen is farther than T from every query vector, so the products seen at
    distance <= T are complete and correctly ranked. Fetch more until enough of them are.
    """
    wanted = offset + limit
    fetch = max(2 * wanted, 32)
    while True:
        best: dict[int, Neighbour] = {}
        threshold = float("inf")
        for hits in index.search_batch(vectors, limit=fetch, where=where, max_distance=max_distance, look=look):
            if len(hits) == fetch:
                threshold = min(threshold, hits[-1].distance)
            for hit in hits:
                pid = hit.product_id
                seen = best.get(pid)
                if seen is None or (hit.distance, hit.id) < (seen.distance, seen.image_id):
                    best[pid] = Neighbour(pid, hit.id, hit.distance)
        ranked = sorted(best.values(), key=lambda n: (n.distance, n.product_id))
        settled = [n for n in ranked if n.distance <= threshold]
        if len(settled) >= wanted or threshold == float("inf"):
            return settled[offset:wanted]
        if fetch >= MAX_CANDIDATES:
            return ranked[offset:wanted]  # best effort past the candidate cap
        fetch = min(fetch * 4, MAX_CANDIDATES)


def steering_vectors(
    session: DbSession, active: Active, index: VectorIndex, name: str, product_ids: Sequence[int]
) -> tuple[list[Any], list[Any]]:
    """Per liked or unliked product, the mean of its photos' 1000-d vectors and of their look vectors (indexed by
    the active model; no looks in a collection from before them)."""
    if len(product_ids) > MAX_STEERING:
        raise InvalidInput(name, f"at most {MAX_STEERING} products")
    out, looks = [], []
    for product_id in dict.fromkeys(product_ids):
        try:
            product = get_product(session=session, product_id=product_id)
        except NotFound:
            raise NotFound(f"{name}: product {product_id} not found", field=name) from None
        indexed = indexed_photo_ids(product, active)
        found = list(index.vectors(indexed).values()) if indexed else []
        if not found:
            raise NotIndexed(f"{name}: product {product_id} has no photo indexed by the active model yet", field=name)
        out.append(np.mean(np.asarray(found, dtype=np.float32), axis=0).tolist())
        found_looks = list(index.named_vectors(indexed, LOOK).values())
        if found_looks:
            looks.append(np.mean(np.asarray(found_looks, dtype=np.float32), axis=0).tolist())
    return out, looks


def steered_products(
    session: DbSession,
    active: Active,
    index: VectorIndex,
    vectors: Sequence[Sequence[float]],
    where: SearchFilter,
    params: SimilarParams,
    looks: Sequence[Any] | None = None,
) -> list[Neighbour]:
    """like/unlike (Qdrant's recommend: the query's vectors and the liked products' as positives, the unliked
    products' as negatives; the unliked products are left out) and diverse (MMR), each product once by its
    first hit. With look vectors, like/unlike rank the best candidates of the 1000-d recommend by a recommend
    on their looks: "more like this" means its look among items of its kind. Pages come from one ranking."""
    both = set(params.like) & set(params.unlike)
    if both:
        raise InvalidInput("unlike", f"product {min(both)} is both liked and unliked")
    liked, liked_looks = steering_vectors(session, active, index, "like", params.like)
    negatives, unliked_looks = steering_vectors(session, active, index, "unlike", params.unlike)
    positives = [*vectors, *liked]
    steer_looks = bool(looks) and bool(params.like or params.unlike)
    look_positives = [*(looks or []), *liked_looks] if steer_looks else []
    look_negatives = unliked_looks if steer_looks else []
    where = replace(where, exclude_product_ids=(*where.exclude_product_ids, *params.unlike))
    anchor = np.mean(np.asarray(vectors, dtype=np.float32), axis=0).tolist()
    by_distance = params.max_distance is not None and not (params.like or params.unlike)
    wanted = params.offset + params.limit
    fetch = max(2 * wanted, 32)
    while True:
        steer = Steer(
            positives,
            negatives,
            diverse=params.diverse or 0.0,
            anchor=anchor,
            candidates=max(DIVERSE_CANDIDATES, 2 * fetch),
            look_positives=look_positives,
            look_negatives=look_negatives,
        )
        hits = index.steered(steer, limit=fetch, where=where)
        best: dict[int, Neighbour] = {}
        for hit in hits:
            if by_distance and hit.distance > params.max_distance:  # type: ignore[operator]
                continue
            best.setdefault(hit.product_id, Neighbour(hit.product_id, hit.id, hit.distance))
        ranked = list(best.values())
        if len(ranked) >= wanted or len(hits) < fetch or fetch >= MAX_CANDIDATES:
            return ranked[params.offset : wanted]
        fetch = min(fetch * 4, MAX_CANDIDATES)


def exclude_product(where: SearchFilter, product_id: int) -> SearchFilter:
    return replace(where, exclude_product_ids=(*where.exclude_product_ids, product_id))


def product_rows(*, session: DbSession, product_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Products with their photos as plain dicts in the shape of ProductOut (photos carry their stored name
    where the API shows a URL), in two plain queries.

    The hot path of every similar-items answer: ORM objects and schema dumps cost more than the
    vector search here, so rows go straight to dicts. A test keeps this equal to ProductOut.
    """
    products: dict[int, dict[str, Any]] = {}
    for row in session.execute(select(Product.__table__).where(Product.id.in_(list(product_ids)))).mappings():
        products[row["id"]] = {
            "id": row["id"],
            "sku": row["sku"],
            "title": row["title"],
            "category": row["category"],
            "brand": row["brand"],
            "price": float(row["price"]) if row["price"] is not None else None,
            "attributes": row["attributes"],
            "images": [],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        }
    image_rows = session.execute(
        select(ProductImage.__table__).where(ProductImage.product_id.in_(list(products))).order_by(ProductImage.id)
    ).mappings()
    for row in image_rows:
        products[row["product_id"]]["images"].append(
            {
                "id": row["id"],
                "stored_name": row["stored_name"],
                "status": row["status"],
                "error": row["error"],
                "width": row["width"],
                "height": row["height"],
                "content_type": row["content_type"],
                "original_filename": row["original_filename"],
                "model_version": row["model_version"],
                "indexed_at": row["indexed_at"].isoformat() if row["indexed_at"] is not None else None,
                "duplicate_of": [],
            }
        )
    images = {image["id"]: image for product in products.values() for image in product["images"]}
    for image_id, found in duplicates_by_image(session, list(images)).items():
        images[image_id]["duplicate_of"] = found
    return products
