"""Request and response schemas: they validate input and generate /openapi.json."""

from __future__ import annotations

import json
from typing import Any

from apiflask import Schema, fields, validators
from flask import url_for
from marshmallow import ValidationError, post_load

SKU = validators.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$", error="1-64 letters, digits or . _ - /")
NAME = validators.Length(min=1, max=64)


class JsonObjectText(fields.Field):
    """A form field holding a JSON object as text (multipart cannot nest)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError) as exc:
            raise ValidationError("must be a JSON object") from exc
        if not isinstance(parsed, dict):
            raise ValidationError("must be a JSON object")
        return parsed


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}


class ProductFields(Schema):
    sku = fields.String(required=True, validate=SKU, metadata={"example": "DRESS-0042"})
    title = fields.String(required=True, validate=validators.Length(min=1, max=200))
    category = fields.String(required=True, validate=NAME, metadata={"example": "dress"})
    brand = fields.String(load_default=None, allow_none=True, validate=NAME)
    price = fields.Decimal(
        load_default=None, allow_none=True, places=2, allow_nan=False, validate=validators.Range(min=0, max=10**10)
    )
    attributes = JsonObjectText(load_default=None, metadata={"description": "a JSON object, as text in multipart"})

    @post_load
    def strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _strip(data)


class ProductCreateIn(ProductFields):
    images = fields.List(
        fields.File(), load_default=list, metadata={"description": "one or more photos (repeat the field)"}
    )


class ImagesIn(Schema):
    images = fields.List(fields.File(), required=True, metadata={"description": "one or more photos"})


class ProductPatchIn(Schema):
    sku = fields.String(validate=SKU)
    title = fields.String(validate=validators.Length(min=1, max=200))
    category = fields.String(validate=NAME)
    brand = fields.String(allow_none=True, validate=NAME)
    price = fields.Decimal(allow_none=True, places=2, allow_nan=False, validate=validators.Range(min=0, max=10**10))
    attributes = JsonObjectText()

    @post_load
    def strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _strip(data)


class PhotoIn(Schema):
    image = fields.File(required=True, metadata={"description": "the photo to search with"})


class ListQuery(Schema):
    page = fields.Integer(load_default=1, validate=validators.Range(min=1))
    per_page = fields.Integer(load_default=20, validate=validators.Range(min=1, max=100))
    category = fields.List(fields.String(validate=NAME), load_default=list)


class SimilarQuery(Schema):
    limit = fields.Integer(load_default=10, validate=validators.Range(min=1, max=100))
    offset = fields.Integer(load_default=0, validate=validators.Range(min=0, max=10_000))
    category = fields.List(fields.String(validate=NAME), load_default=list)
    brand = fields.List(fields.String(validate=NAME), load_default=list)
    price_min = fields.Float(load_default=None, allow_nan=False, validate=validators.Range(min=0))
    price_max = fields.Float(load_default=None, allow_nan=False, validate=validators.Range(min=0))
    max_distance = fields.Float(load_default=None, allow_nan=False, validate=validators.Range(min=0))


def media_url(image: Any) -> str:
    return url_for("media.serve", name=image.stored_name)


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


class ProductOut(Schema):
    id = fields.Integer()
    sku = fields.String()
    title = fields.String()
    category = fields.String()
    brand = fields.String(allow_none=True)
    price = fields.Float(allow_none=True)
    attributes = fields.Dict()
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
    limit = fields.Integer()
    offset = fields.Integer()


class ImagesOut(Schema):
    items = fields.List(fields.Nested(ImageOut))
