"""Request and response schemas: they validate input and generate /openapi.json."""

from __future__ import annotations

from typing import Any, cast

from apiflask import Schema, fields, validators
from flask import url_for

from backend.domain.products import NAME, SKU, ProductBase, ProductPatchFields, product_fields
from backend.domain.queries import SearchQuery, SimilarQuery
from backend.services.similar import ProductRow, SimilarItems, SimilarParams

PHOTOS = fields.List(
    fields.File(), load_default=list, metadata={"description": "one or more photos (repeat the field)"}
)
ProductCreateIn = cast(
    type[Schema], ProductBase.from_dict({**product_fields(patch=False), "images": PHOTOS}, name="ProductCreateIn")
)
ProductPatchIn = cast(type[Schema], ProductPatchFields)
# The similar-items parameters are the pages' too: defined in the domain, typed for APIFlask here.
SimilarQueryIn = cast(type[Schema], SimilarQuery)
SearchQueryIn = cast(type[Schema], SearchQuery)


class ImagesIn(Schema):
    images = fields.List(
        fields.File(), required=True, validate=validators.Length(min=1), metadata={"description": "one or more photos"}
    )


class ErrorOut(Schema):
    """Every error: a machine-readable code and a sentence; `field` names the bad input where there is one."""

    error = fields.String(required=True, metadata={"example": "invalid_field"})
    message = fields.String(required=True)
    field = fields.String(metadata={"description": "the request field or parameter at fault"})
    status = fields.Raw(metadata={"description": "409 not_indexed: the photos' indexing status"})
    reason = fields.String(allow_none=True, metadata={"description": "409 not_indexed on a photo: why it failed"})


class PhotoIn(Schema):
    image = fields.File(required=True, metadata={"description": "the photo to search with"})


class PageQuery(Schema):
    page = fields.Integer(load_default=1, validate=validators.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=20, validate=validators.Range(min=1, max=100))


class ListQuery(PageQuery):
    category = fields.List(fields.String(validate=NAME), load_default=list)
    sku = fields.String(load_default=None, validate=SKU, metadata={"description": "only the product with this sku"})


def media_url(image: Any) -> str:
    name = image["stored_name"] if isinstance(image, dict) else image.stored_name
    return url_for("media.serve", name=name)


def similar_body(found: SimilarItems, params: SimilarParams) -> dict[str, Any]:
    """A SimilarOut body from the use case's plain rows: photos get their URL here."""
    prefix = url_for("media.serve", name="x")[:-1]
    items = [
        {"product": public_product(product, prefix), "distance": n.distance, "image_id": n.image_id}
        for n, product in found.items
    ]
    body = {"items": items, "model_version": found.model_version, "limit": params.limit, "offset": params.offset}
    if found.query_product_id is not None:
        body["query_product_id"] = found.query_product_id
    if found.arm is not None:
        body["arm"] = found.arm
    return body


def public_product(row: ProductRow, media_prefix: str) -> dict[str, Any]:
    """A product row of `product_rows` as ProductOut shows it (a test keeps the two equal)."""
    images = [
        {"id": image["id"], "url": media_prefix + image["stored_name"]}
        | {k: v for k, v in image.items() if k not in ("id", "stored_name")}
        for image in row["images"]
    ]
    return {**row, "images": images}


class DuplicateOut(Schema):
    product_id = fields.Integer()
    image_id = fields.Integer()
    distance = fields.Float(metadata={"description": "0 for the same file; below DUPLICATE_DISTANCE for a near-copy"})


class ImageOut(Schema):
    id = fields.Integer()
    url = fields.Function(media_url, metadata={"type": "string"})
    status = fields.String(metadata={"enum": ["pending", "indexed", "failed"]})
    error = fields.String(allow_none=True)
    width = fields.Integer()
    height = fields.Integer()
    content_type = fields.String()
    original_filename = fields.String(allow_none=True)
    model_version = fields.String(allow_none=True)
    indexed_at = fields.DateTime(allow_none=True)
    duplicate_of = fields.List(
        fields.Nested(DuplicateOut),
        metadata={"description": "photos of other products this one is the same file as, or a near-copy of"},
    )


class ProductOut(Schema):
    id = fields.Integer()
    sku = fields.String()
    title = fields.String()
    category = fields.String()
    brand = fields.String(allow_none=True)
    price = fields.Float(allow_none=True)
    attributes = fields.Dict(metadata={"description": "the product's attributes: any JSON object"})
    url = fields.String(allow_none=True, metadata={"description": "the product's page on the shop's site"})
    images = fields.List(fields.Nested(ImageOut))
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class ProductPageOut(Schema):
    items = fields.List(fields.Nested(ProductOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class NeighbourOut(Schema):
    product = fields.Nested(ProductOut)
    distance = fields.Float()
    image_id = fields.Integer()


class SimilarOut(Schema):
    items = fields.List(fields.Nested(NeighbourOut))
    model_version = fields.String()
    query_product_id = fields.Integer(metadata={"description": "the product asked about (by id or sku)"})
    arm = fields.String(
        metadata={"description": "the experiment arm that answered (a `visitor` while a model A/B test runs)"}
    )
    limit = fields.Integer()
    offset = fields.Integer()


class ImagesOut(Schema):
    items = fields.List(fields.Nested(ImageOut))


CHECK = fields.String(metadata={"enum": ["ok", "unavailable"]})


class HealthOut(Schema):
    status = fields.String(required=True, metadata={"enum": ["ok", "degraded"]})
    database = CHECK
    index = CHECK


class PhotoCountsOut(Schema):
    pending = fields.Integer()
    indexed = fields.Integer()
    failed = fields.Integer()


class IndexStatsOut(Schema):
    backend = fields.String(metadata={"enum": ["qdrant-edge", "qdrant-server"]})
    collection = fields.String()
    points = fields.Integer()
    warm = fields.Boolean(metadata={"description": "the store's data is in memory"})


class ModelStatsOut(Schema):
    version = fields.String()
    arch = fields.String()
    origin = fields.String(metadata={"enum": ["untrained", "imagenet-pretrained", "fine-tuned"]})
    pretrained = fields.Boolean()
    fine_tuned = fields.Boolean()
    trained = fields.Boolean()
    normalize = fields.String(metadata={"enum": ["raw", "l2"]})
    image_size = fields.Integer()
    device = fields.String()
    note = fields.String(allow_none=True)


class ArmStatsOut(Schema):
    name = fields.String()
    model_version = fields.String()
    weight = fields.Integer()
    collection = fields.String(metadata={"description": "the collection that answers this arm's visitors"})


class ExperimentStatsOut(Schema):
    id = fields.Integer()
    arms = fields.List(fields.Nested(ArmStatsOut))
    started_at = fields.String(metadata={"format": "date-time"})


class StatsOut(Schema):
    products = fields.Integer()
    images = fields.Nested(PhotoCountsOut)
    index = fields.Nested(IndexStatsOut)
    model = fields.Nested(ModelStatsOut)
    tasks = fields.String(metadata={"enum": ["in-process", "celery"]})
    experiment = fields.Nested(
        ExperimentStatsOut,
        allow_none=True,
        metadata={"description": "the model A/B test that runs (`lookalike experiment start`), or null"},
    )


class ImportIn(Schema):
    feed = fields.File(required=True, metadata={"description": "the feed: a .csv or .jsonl file"})
    photos = fields.File(
        load_default=None,
        metadata={"description": "a zip of the photos the feed names; without it, they are read under IMPORT_DIR"},
    )
    dry_run = fields.Boolean(load_default=False, metadata={"description": "check and count; write nothing"})


class RowErrorOut(Schema):
    line = fields.Integer(metadata={"description": "the row's first line in the feed"})
    sku = fields.String(allow_none=True)
    reason = fields.String(metadata={"example": "bad price"})
    message = fields.String()


class ImportOut(Schema):
    id = fields.Integer()
    state = fields.String(metadata={"enum": ["queued", "running", "done", "failed"]})
    feed_name = fields.String()
    photos_from = fields.String(metadata={"enum": ["zip", "folder"]})
    dry_run = fields.Boolean()
    rows_total = fields.Integer(allow_none=True, metadata={"description": "the feed's rows, counted at the start"})
    rows_done = fields.Integer()
    summary = fields.Dict(
        metadata={"description": "rows, created, updated, unchanged, skipped, skipped_by_reason, photos_added/removed"}
    )
    errors = fields.List(fields.Nested(RowErrorOut), metadata={"description": "skipped rows (the first 1000)"})
    error = fields.String(allow_none=True, metadata={"description": "why a failed import stopped"})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


class DuplicatePhotoOut(Schema):
    image_id = fields.Integer()
    product_id = fields.Integer()
    sku = fields.String()
    url = fields.Function(media_url, metadata={"type": "string"})


class DuplicatePairOut(Schema):
    image_id = fields.Integer(metadata={"description": "the newer photo"})
    other_id = fields.Integer()
    distance = fields.Float()
    same_file = fields.Boolean()


class DuplicateGroupOut(Schema):
    photos = fields.List(fields.Nested(DuplicatePhotoOut))
    pairs = fields.List(fields.Nested(DuplicatePairOut))


class DuplicatePageOut(Schema):
    items = fields.List(fields.Nested(DuplicateGroupOut))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()
