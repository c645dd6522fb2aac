"""The product's fields and their rules, once: the API's schemas, the pages' forms and the feed importer load
products through these (marshmallow only: no web framework here)."""

from __future__ import annotations

import json
import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypedDict

from marshmallow import Schema, ValidationError, fields, post_load, validate

SKU = validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$", error="1-64 letters, digits or . _ - /")
# No control characters (PostgreSQL cannot store NUL; none belongs in a name or a title).
PRINTABLE = validate.Regexp(r"^[^\x00-\x1f\x7f]*$", error="must not contain control characters")
# Text is stored trimmed: a value of spaces alone is no value (it was stored as an empty string).
NOT_BLANK = validate.Regexp(r"\s*\S", error="must not be blank")
NAME = [validate.Length(min=1, max=64), PRINTABLE, NOT_BLANK]
TITLE = [validate.Length(min=1, max=200), PRINTABLE, NOT_BLANK]
# A product's page on the shop's own site: absolute, http or https (the widget links each look-alike there).
URL_MAX = 2048
URL = [
    validate.Length(max=URL_MAX),
    validate.URL(schemes={"http", "https"}, require_tld=False, error="an absolute http or https URL"),
]
# The price column is Numeric(12, 2): ten digits before the point.
PRICE = validate.Range(min=0, max=9_999_999_999.99)
# Attributes are shown with every product in every list and similar-items page: kept small and plain.
ATTRIBUTES_MAX_BYTES = 16 * 1024
ATTRIBUTES_MAX_DEPTH = 8


def _no_constant(name: str) -> None:
    raise ValueError(f"NaN and Infinity are not JSON numbers ({name})")


def check_json_value(value: Any) -> None:
    """Refuse what standard JSON parsers, PostgreSQL's jsonb or a reader cannot take: NaN and Infinity,
    NUL characters, nesting deeper than ATTRIBUTES_MAX_DEPTH. Walked without recursion."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > ATTRIBUTES_MAX_DEPTH:
                raise ValidationError(f"nested deeper than {ATTRIBUTES_MAX_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValidationError("NaN and Infinity are not JSON numbers")
        elif isinstance(item, str) and "\x00" in item:
            raise ValidationError("must not contain NUL characters")


class JsonObjectText(fields.Field):
    """A JSON object: as text in a multipart form (it cannot nest), or as itself in a JSON body."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            parsed = value
        else:
            if not isinstance(value, str | bytes):
                raise ValidationError("must be a JSON object")
            if len(value) > ATTRIBUTES_MAX_BYTES:
                raise ValidationError(f"at most {ATTRIBUTES_MAX_BYTES} bytes of JSON")
            try:
                parsed = json.loads(value, parse_constant=_no_constant)
            except RecursionError as exc:
                raise ValidationError(f"nested deeper than {ATTRIBUTES_MAX_DEPTH} levels") from exc
            except ValueError as exc:
                raise ValidationError(f"must be a JSON object ({exc})") from exc
        if not isinstance(parsed, dict):
            raise ValidationError("must be a JSON object")
        check_json_value(parsed)
        size = len(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")).encode())
        if size > ATTRIBUTES_MAX_BYTES:
            raise ValidationError(f"at most {ATTRIBUTES_MAX_BYTES} bytes of JSON ({size} given)")
        return parsed


def _strip(data: dict[str, Any]) -> dict[str, Any]:
    """Trim text; prices become exact 2-place decimals, as the database stores them."""
    out = {k: v.strip() if isinstance(v, str) else v for k, v in data.items()}
    if out.get("price") is not None:
        out["price"] = Decimal(str(out["price"])).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return out


class ProductBase(Schema):
    @post_load
    def strip(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return _strip(data)


def product_fields(*, patch: bool) -> dict[str, fields.Field]:
    """The product's fields, once: required with defaults to create, every one optional to PATCH."""
    optional: dict[str, Any] = {} if patch else {"load_default": None}
    required = not patch
    return {
        "sku": fields.String(required=required, validate=SKU, metadata={"example": "DRESS-0042"}),
        "title": fields.String(required=required, validate=TITLE),
        "category": fields.String(required=required, validate=NAME, metadata={"example": "dress"}),
        "brand": fields.String(allow_none=True, validate=NAME, **optional),
        "price": fields.Float(allow_none=True, allow_nan=False, validate=PRICE, **optional),
        "attributes": JsonObjectText(
            metadata={"type": "object", "description": "a JSON object (in multipart, as JSON text)"}, **optional
        ),
        "url": fields.String(
            allow_none=True,
            validate=URL,
            metadata={"description": "the product's page on the shop's site", "example": "https://shop.example/p/42"},
            **optional,
        ),
    }


# The product's fields as schemas: to create (the API adds its photos field) and to change (PATCH).
ProductFields = ProductBase.from_dict(product_fields(patch=False), name="ProductFields")
ProductPatchFields = ProductBase.from_dict(product_fields(patch=True), name="ProductPatchIn")


class ProductChanges(TypedDict, total=False):
    """The fields a change (PATCH, the edit form) sets: any of them, each checked by ProductPatchFields."""

    sku: str
    title: str
    category: str
    brand: str | None
    price: float | None
    attributes: dict[str, Any]
    url: str | None
