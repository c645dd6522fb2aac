"""The similar-items use case: the nearest other products to a product, to one of its photos, or to a photo.

Routes parse, call one of the three functions here, and serialize. This module owns the policy (which
photos count, how a product with several photos queries, how hits become products); the index adapter
owns the store.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import numpy as np
from sqlalchemy import Text, bindparam, cast, select

from backend.config import ProductQuery, Settings
from backend.core.extensions import DbSession
from backend.db.driver import driver_rows, iso_utc
from backend.db.duplicates import duplicates_by_photo
from backend.db.models import ImageStatus, Product, ProductImage, attribute_term
from backend.db.products import MAX_ID, get_photo, photo_status_counts, product_id_of
from backend.domain.photos import DECODE_MIN_SIDE, CheckedPhoto, open_photo
from backend.errors import InvalidInput, NotFound, NotIndexed
from backend.index import IndexUnavailable, SearchFilter, VectorIndex
from backend.index.base import KIND, LOOK, LookQuery, Steer
from backend.serving.active import Active, answering, index_of
from backend.serving.embedders import embedder_for, on_inference_thread
from ml.pixels import to_rgb
from ml.versions import EXPANSION_POWER

log = logging.getLogger(__name__)
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
    # The shopper's random id (the widget's): while an experiment runs, its arm answers.
    visitor: str | None = None

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


class PhotoRow(TypedDict):
    """A photo as ProductOut shows it, by its stored name where the API shows a URL."""

    id: int
    stored_name: str
    status: str
    error: str | None
    width: int | None
    height: int | None
    content_type: str | None
    original_filename: str | None
    model_version: str | None
    indexed_at: str | None
    duplicate_of: list[dict[str, Any]]


class ProductRow(TypedDict):
    """A product as ProductOut shows it (a test keeps the two equal)."""

    id: int
    sku: str
    title: str
    category: str
    brand: str | None
    price: float | None
    attributes: dict[str, Any]
    url: str | None
    images: list[PhotoRow]
    created_at: str
    updated_at: str


@dataclass
class SimilarItems:
    """The answer: each neighbour with its product (a plain dict, photos by stored name), and the model."""

    model_version: str
    items: list[tuple[Neighbour, ProductRow]] = field(default_factory=list)
    query_product_id: int | None = None  # the product asked about (none for an uploaded photo)
    arm: str | None = None  # the experiment arm that answered (none outside an experiment, or without a visitor)


def across_a_switch(
    session: DbSession, settings: Settings, query: Callable[[Active], SimilarItems], visitor: str | None = None
) -> SimilarItems:
    """Run a query on the live collection that answers this visitor (its experiment arm's, else the active one,
    as this process last read them: `live_view`); when the index refuses it because a reindex switched
    collections meanwhile (the old one let go while this request was slow), or the photos are not indexed by
    the model read (a switch this process has not read yet), once more on a fresh read when it differs: a
    switch fails no query (tests/web/test_activate_browser.py saw one 503 under load)."""
    active = answering(session=session, settings=settings, visitor=visitor)
    try:
        return query(active)
    except (IndexUnavailable, NotIndexed):  # the process's view of the live collections may be a moment old
        session.rollback()  # a fresh read of the switch
        now = answering(session=session, settings=settings, visitor=visitor, fresh=True)
        if now.name == active.name:
            raise
        log.info("similar items: the live collection changed to %s during the query: asked again", now.name)
        return query(now)


def similar_to_sku(*, session: DbSession, settings: Settings, sku: str, params: SimilarParams) -> SimilarItems:
    """As `similar_to_product`, for the product with this sku (a shop's page knows its sku, not our id)."""
    product_id = product_id_of(session=session, sku=sku)
    return similar_to_product(session=session, settings=settings, product_id=product_id, params=params)


def similar_to_product(
    *, session: DbSession, settings: Settings, product_id: int, params: SimilarParams
) -> SimilarItems:
    """Products that look like this one, each once by its closest photo; NotIndexed while it has no vector."""
    found = across_a_switch(
        session,
        settings,
        lambda active: _similar_to_product(session, settings, active, product_id, params),
        params.visitor,
    )
    found.query_product_id = product_id
    return found


def _similar_to_product(
    session: DbSession, settings: Settings, active: Active, product_id: int, params: SimilarParams
) -> SimilarItems:
    # One collection per model: the query vectors and the points searched come from the same model.
    where = params.search_filter(settings.attribute_keys)
    indexed = indexed_photos(session, product_id, active)
    index, vectors = _stored_vectors(
        settings,
        active,
        indexed,
        lambda: NotIndexed(
            f"product {product_id} has no photo indexed by the active model yet",
            status=photo_status_counts(session=session, product_id=product_id),
        ),
    )
    weight = look_weight(settings, index, params)
    looks, kinds = _stored_looks(index, indexed, weight, params)
    if settings.product_query is ProductQuery.mean:
        # As good as querying every photo on clothing-small, at one search (bench/multi_photo_query.py).
        vectors = [np.mean(np.asarray(vectors, dtype=np.float32), axis=0)]
        looks = [np.mean(np.asarray(looks, dtype=np.float32), axis=0)] if looks else None
        kinds = [np.mean(np.asarray(kinds, dtype=np.float32), axis=0)] if kinds else []
    look = _look_query(settings, active, index, weight, looks, kinds, params)
    return _answer(
        session, active, index, _Query(vectors, looks, look), exclude_product(where, product_id), params, settings
    )


# The hot path's statements, built once (building one costs more than running it).
_PHOTOS_OF = (
    select(ProductImage.id, ProductImage.status, ProductImage.model_version)
    .select_from(Product)
    .outerjoin(ProductImage, ProductImage.product_id == Product.id)
    .where(Product.id == bindparam("product_id"))
    .order_by(ProductImage.id)
)
_P, _I = Product.__table__, ProductImage.__table__
_PRODUCT_ROWS = (
    select(
        _P.c.id,
        _P.c.sku,
        _P.c.title,
        _P.c.category,
        _P.c.brand,
        _P.c.price,
        cast(_P.c.attributes, Text).label("attributes"),  # as text: decoded once per product, not per photo
        _P.c.url,
        _P.c.created_at,
        _P.c.updated_at,
        *(
            _I.c[name].label(f"image_{name}")
            for name in (
                "id",
                "stored_name",
                "status",
                "error",
                "width",
                "height",
                "content_type",
                "original_filename",
                "model_version",
                "indexed_at",
            )
        ),
    )
    .select_from(_P.outerjoin(_I, _I.c.product_id == _P.c.id))
    .where(_P.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_I.c.id)
)


def indexed_photos(session: DbSession, product_id: int, active: Active, name: str | None = None) -> list[int]:
    """The product's photos that the database says are indexed by the active collection's model (by any model, for
    an experiment arm's collection: its points say which it holds), in one query; NotFound (naming `name`, where a
    parameter names the product) when there is no such product."""
    found: Sequence[Any] = []
    if 0 < product_id <= MAX_ID:
        found = driver_rows(session, _PHOTOS_OF, {"product_id": product_id})
    if not found:
        if name is None:
            raise NotFound(f"product {product_id} not found")
        raise NotFound(f"{name}: product {product_id} not found", field=name)
    return [
        image_id
        for image_id, status, version in found
        if image_id is not None
        and status == ImageStatus.indexed
        and (version == active.model_version or not active.tracked)
    ]


def similar_to_stored_photo(
    *, session: DbSession, settings: Settings, image_id: int, params: SimilarParams
) -> SimilarItems:
    """Products that look like this one photo (its own product left out); NotIndexed while it has no vector."""
    return across_a_switch(
        session,
        settings,
        lambda active: _similar_to_stored_photo(session, settings, active, image_id, params),
        params.visitor,
    )


def _similar_to_stored_photo(
    session: DbSession, settings: Settings, active: Active, image_id: int, params: SimilarParams
) -> SimilarItems:
    where = params.search_filter(settings.attribute_keys)
    image = get_photo(session=session, image_id=image_id)
    indexed = image.status == ImageStatus.indexed and (
        image.model_version == active.model_version or not active.tracked
    )
    index, vectors = _stored_vectors(
        settings,
        active,
        [image_id] if indexed else [],
        lambda: NotIndexed(
            f"photo {image_id} is not indexed by the active model yet", status=image.status, reason=image.error
        ),
    )
    weight = look_weight(settings, index, params)
    looks, kinds = _stored_looks(index, [image_id], weight, params)
    look = _look_query(settings, active, index, weight, looks, kinds, params)
    return _answer(
        session, active, index, _Query(vectors, looks, look), exclude_product(where, image.product_id), params, settings
    )


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


def similar_to_upload(
    *, session: DbSession, settings: Settings, photo: CheckedPhoto, params: SimilarParams, box: Box | None = None
) -> SimilarItems:
    """Products that look like a photo that is not stored (a shopper's upload), or like a part of it (`box`)."""
    return across_a_switch(
        session,
        settings,
        lambda active: _similar_to_upload(session, settings, active, photo, params, box),
        params.visitor,
    )


def _similar_to_upload(
    session: DbSession,
    settings: Settings,
    active: Active,
    photo: CheckedPhoto,
    params: SimilarParams,
    box: Box | None,
) -> SimilarItems:
    index = index_of(settings, active)
    embedder = embedder_for(settings, active.model_version)
    # A box is decoded at the resolution a whole photo would be: its photo at that many times the side.
    side = DECODE_MIN_SIDE if box is None else math.ceil(DECODE_MIN_SIDE / min(box.w, box.h))
    image = open_photo(photo.data, settings.max_image_pixels, settings.max_aspect_ratio, min_side=side)
    if box is not None:
        image = crop_to(image, box)
    described = on_inference_thread(lambda: embedder.describe([image]))  # see backend.serving.embedders
    looks = [described.look[0].tolist()]
    kinds = [described.kind[0].tolist()] if index.kinds else []
    look = _look_query(settings, active, index, look_weight(settings, index, params), looks, kinds, params)
    where = params.search_filter(settings.attribute_keys)
    query = _Query([described.embedding[0].tolist()], looks, look)
    return _answer(session, active, index, query, where, params, settings)


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


def _stored_looks(
    index: VectorIndex, image_ids: list[int], weight: float, params: SimilarParams
) -> tuple[list[Any] | None, list[Any]]:
    """The query photos' look vectors, where the look ranks (weight above 0) or like/unlike steer by it, and their
    kind vectors, where the look ranks among candidates by them (see _look_query); in one read."""
    names = []
    if weight != 0 or params.like or params.unlike:
        names.append(LOOK)
    if weight != 0 and params.max_distance is None and index.kinds:
        names.append(KIND)
    if not names:
        return None, []
    found = index.vectors_named(image_ids, names)
    return _in_order(found.get(LOOK, {}), image_ids) or None, _in_order(found.get(KIND, {}), image_ids)


def _in_order(found: Mapping[int, Any], image_ids: Sequence[int]) -> list[Any]:
    """Vectors by image id as a list in the order of `image_ids` (those found), so that the kinds of vectors of
    several photos line up."""
    return [found[i] for i in image_ids if i in found]


def _look_query(
    settings: Settings,
    active: Active,
    index: VectorIndex,
    weight: float,
    looks: Sequence[Any] | None,
    kinds: Sequence[Any],
    params: SimilarParams,
) -> LookQuery | None:
    """The index's look ranking for these query looks, or None (weight 0, or photos without a look vector).

    The candidates are the nearest by the kind vector, or by the 1000-d vector where the collection has no kind
    vectors or `max_distance` bounds the 1000-d distance."""
    if weight == 0 or not looks:
        return None
    by_kind = bool(kinds) and len(kinds) == len(looks) and params.max_distance is None
    embedding_scale, look_scale = look_scales(index, active.name, settings.look_candidates, by_kind=by_kind)
    return LookQuery(
        list(looks), weight, embedding_scale, look_scale, settings.look_candidates, kinds=list(kinds) if by_kind else ()
    )


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def expanded(
    index: VectorIndex,
    vectors: Sequence[Sequence[float]],
    look: LookQuery,
    where: SearchFilter,
    neighbours: int,
    limit: int,
) -> LookQuery:
    """Query expansion (alpha-QE): each query's kind and look vectors plus those of its `neighbours` best hits,
    each weighted by its cosine similarity to the query to EXPANSION_POWER, to rank the same candidates again
    (the pools for `limit` hits). Two photos of the product a shopper photographed pull in its other photos
    (measured in the README)."""
    if neighbours <= 0 or not look.kinds:
        return look
    look = replace(look, pools=index.look_candidates(vectors, look=look, limit=limit, where=where))
    first = index.search_batch(vectors, limit=neighbours, where=where, look=look)
    ids = sorted({hit.id for hits in first for hit in hits})
    if not ids:
        return look
    found = index.vectors_named(ids, [KIND, LOOK])
    kinds: list[list[float]] = []
    looks: list[list[float]] = []
    for n, hits in enumerate(first):
        for name, query, out in ((KIND, look.kinds[n], kinds), (LOOK, look.vectors[n], looks)):
            own = _unit(query)
            total = own.copy()
            for hit in hits:
                if hit.id in found[name]:
                    other = _unit(found[name][hit.id])
                    total += max(float(own @ other), 0.0) ** EXPANSION_POWER * other
            out.append(_unit(total).tolist())
    return replace(look, vectors=looks, kinds=kinds)


SCALE_SAMPLE = 32
SCALE_RECHECK_S = 60.0
# Per collection and pool: (points when measured, when the count was last checked, pool scale, look scale).
_scales: dict[tuple[str, bool], tuple[int, float, float, float]] = {}
_measuring = threading.Lock()


def look_scales(index: VectorIndex, name: str, candidates: int, *, by_kind: bool = False) -> tuple[float, float]:
    """Typical distances among a photo's candidates, by the vector that picks them (kind, or 1000-d) and by
    the look, in this collection.

    Measured once per collection and process on a sample of points, and again once the collection has doubled
    (its size looked at once a minute, not per query): the blend weighs the two distances by them, whatever
    the model's scale. One request measures while the others wait (a new collection) or go on with the last
    figures (a grown one): measured by every request at once, the first second after a switch took each of
    them a second (bench/soak.py)."""
    key = (name, by_kind)
    known = _scales.get(key)
    if known is not None and time.monotonic() - known[1] < SCALE_RECHECK_S:
        return known[2], known[3]
    if known is not None and not _measuring.acquire(blocking=False):
        return known[2], known[3]  # another request measures it again meanwhile
    if known is None:
        _measuring.acquire()
    try:
        known = _scales.get(key)
        if known is not None and time.monotonic() - known[1] < SCALE_RECHECK_S:
            return known[2], known[3]  # measured while this one waited
        return _measure_scales(index, key, known, candidates)
    finally:
        _measuring.release()


def prepare_collection(name: str, index: VectorIndex, settings: Settings) -> None:
    """Ready a collection for the similar-items queries before it goes live: its look scales measured here
    rather than by the first requests after the switch."""
    if index.descriptors:
        for by_kind in {False, index.kinds}:
            look_scales(index, name, settings.look_candidates, by_kind=by_kind)


def _measure_scales(
    index: VectorIndex, key: tuple[str, bool], known: tuple[int, float, float, float] | None, candidates: int
) -> tuple[float, float]:
    by_kind = key[1]
    now = time.monotonic()
    count = index.count(exact=False)  # has it doubled? (an exact count, inside a request, took 5.6 ms at 100k)
    if known is not None and count < 2 * max(known[0], 1):
        _scales[key] = (known[0], now, known[2], known[3])
        return known[2], known[3]
    sample = index.sample_ids(SCALE_SAMPLE)
    vectors = index.vectors(sample)
    found = index.vectors_named(sample, [LOOK, KIND] if by_kind else [LOOK])
    looks, kinds = found[LOOK], found.get(KIND, {})
    by_pool: list[float] = []
    by_look: list[float] = []
    for image_id, vector in vectors.items():
        if image_id not in looks or (by_kind and image_id not in kinds):
            continue
        pool = [kinds[image_id]] if by_kind else ()
        # Weight 0 ranks the candidates by the vector that picks them, weight 1 by the look; both unscaled.
        for weight, out in ((0.0, by_pool), (1.0, by_look)):
            probe = LookQuery([looks[image_id]], weight, 1.0, 1.0, candidates + 1, kinds=pool)
            out += [hit.distance for hit in index.search_batch([vector], limit=candidates + 1, look=probe)[0][1:]]
    pool_scale = max(float(np.median(by_pool)), 1e-6) if by_pool else 1.0
    look_scale = max(float(np.median(by_look)), 1e-6) if by_look else 1.0
    _scales[key] = (count, now, pool_scale, look_scale)
    return pool_scale, look_scale


def _stored_vectors(
    settings: Settings, active: Active, image_ids: list[int], not_indexed: Callable[[], NotIndexed]
) -> tuple[VectorIndex, list[Any]]:
    """The stored vectors of photos the database says are indexed by the active model; `not_indexed()` is raised
    when there are none (the index is opened only when there are some)."""
    if image_ids:
        index = index_of(settings, active)
        vectors = _in_order(index.vectors(image_ids), image_ids)
        if vectors:
            return index, vectors
    raise not_indexed()


@dataclass(frozen=True)
class _Query:
    """What a similar-items query searches with: its 1000-d vectors, its look vectors (for like and unlike) and
    the look's ranking (None: by the 1000-d vector alone)."""

    vectors: Sequence[Sequence[float]]
    looks: Sequence[Any] | None
    look: LookQuery | None


def _answer(
    session: DbSession,
    active: Active,
    index: VectorIndex,
    query: _Query,
    where: SearchFilter,
    params: SimilarParams,
    settings: Settings,
) -> SimilarItems:
    """Nearest products to the query vectors (the look's ranking expanded by LOOK_EXPANSION neighbours), their
    rows read in two queries."""
    vectors, looks, look, expansion = query.vectors, query.looks, query.look, settings.look_expansion
    if params.steered:
        neighbours = steered_products(session, active, index, vectors, where, params, looks)
    else:
        if look is not None:
            look = expanded(index, vectors, look, where, expansion, first_fetch(params.offset + params.limit))
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
    return SimilarItems(active.model_version, items, arm=active.arm)


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
    fetch = first_fetch(wanted)
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
        if look is not None:
            look = replace(look, pools=())  # the candidates for more hits: found again, as many as they must be


def first_fetch(wanted: int) -> int:
    """How many points the first search of a page of `wanted` products fetches per query vector."""
    return max(2 * wanted, 32)


def steering_vectors(
    session: DbSession, active: Active, index: VectorIndex, name: str, product_ids: Sequence[int]
) -> tuple[list[Any], list[Any]]:
    """Per liked or unliked product, the mean of its photos' 1000-d vectors and of their look vectors (indexed by
    the active model; no looks in a collection from before them)."""
    if len(product_ids) > MAX_STEERING:
        raise InvalidInput(name, f"at most {MAX_STEERING} products")
    out, looks = [], []
    for product_id in dict.fromkeys(product_ids):
        indexed = indexed_photos(session, product_id, active, name)
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


def product_rows(*, session: DbSession, product_ids: Sequence[int]) -> dict[int, ProductRow]:
    """Products with their photos as plain dicts in the shape of ProductOut (photos carry their stored name
    where the API shows a URL), in one join and one query for duplicate pairs.

    The hot path of every similar-items answer: ORM objects and schema dumps cost more than the
    vector search here, so rows go straight to dicts. A test keeps this equal to ProductOut.
    """
    if not product_ids:
        return {}
    products: dict[int, ProductRow] = {}
    images: dict[int, PhotoRow] = {}
    for row in driver_rows(session, _PRODUCT_ROWS, {"ids": list(product_ids)}):
        (pid, sku, title, category, brand, price, attributes, url, created, updated, image_id, *photo) = row
        product = products.get(pid)
        if product is None:
            product = products[pid] = {
                "id": pid,
                "sku": sku,
                "title": title,
                "category": category,
                "brand": brand,
                "price": float(price) if price is not None else None,
                "attributes": json.loads(attributes),  # NOT NULL: the JSON itself, as text
                "url": url,
                "images": [],
                "created_at": iso_utc(created),  # type: ignore[typeddict-item]  # NOT NULL
                "updated_at": iso_utc(updated),  # type: ignore[typeddict-item]
            }
        if image_id is None:
            continue  # a product without photos
        stored_name, status, error, width, height, content_type, original_filename, model_version, indexed = photo
        image: PhotoRow = {
            "id": image_id,
            "stored_name": stored_name,
            "status": status,
            "error": error,
            "width": width,
            "height": height,
            "content_type": content_type,
            "original_filename": original_filename,
            "model_version": model_version,
            "indexed_at": iso_utc(indexed),
            "duplicate_of": [],
        }
        product["images"].append(image)
        images[image_id] = image
    owners = {image["id"]: pid for pid, product in products.items() for image in product["images"]}
    for image_id, found in duplicates_by_photo(session, list(images), owners).items():
        images[image_id]["duplicate_of"] = found
    return products
