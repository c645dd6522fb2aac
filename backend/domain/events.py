"""A shopper event's fields and rules (POST /api/v1/events): what the widget reports, no personal data.

A body is one event or {"events": [...]} of at most MAX_BATCH; each names its type, the product whose look-alikes
were shown (`query`), the one acted on (`product`; an impression lists `shown`, in order), the visitor (a random
id the widget keeps in localStorage), the model version and experiment arm that answered, and when (`at`,
optional: the server's time)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

KINDS = ("impression", "click", "add_to_cart", "purchase")
MAX_BATCH = 50
MAX_SHOWN = 100
MAX_BODY_BYTES = 16 * 1024
# A device's clock may run a little ahead; an event from further in the future is a bad one.
FUTURE_SLACK = timedelta(minutes=5)
VISITOR = validate.Regexp(r"^[A-Za-z0-9_\-]{8,64}$", error="8-64 letters, digits, _ or -")
PRODUCT_ID = validate.Range(min=1, max=2**31 - 1)


class EventIn(Schema):
    type = fields.String(required=True, validate=validate.OneOf(KINDS))
    query = fields.Integer(required=True, strict=True, validate=PRODUCT_ID)
    product = fields.Integer(load_default=None, strict=True, validate=PRODUCT_ID)
    position = fields.Integer(load_default=None, strict=True, validate=validate.Range(min=1, max=MAX_SHOWN))
    shown = fields.List(
        fields.Integer(strict=True, validate=PRODUCT_ID), load_default=list, validate=validate.Length(max=MAX_SHOWN)
    )
    visitor = fields.String(required=True, validate=VISITOR)
    model_version = fields.String(required=True, validate=validate.Length(min=1, max=80))
    arm = fields.String(load_default=None, validate=validate.Length(min=1, max=40))
    at = fields.AwareDateTime(load_default=None, default_timezone=UTC)

    @validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["type"] == "impression":
            if not data["shown"]:
                raise ValidationError("an impression lists the products shown, in order", "shown")
        elif data["product"] is None:
            raise ValidationError(f"a {data['type']} names the product acted on", "product")
        at = data.get("at")
        if at is not None and at > datetime.now(UTC) + FUTURE_SLACK:
            raise ValidationError("in the future", "at")


class EventsIn(Schema):
    events = fields.List(fields.Nested(EventIn), required=True, validate=validate.Length(min=1, max=MAX_BATCH))
