"""The pages' forms (Flask-WTF: CSRF on every one). Product fields are checked by the API's own schemas, so a
page refuses exactly what the API refuses, with the same words, shown beside the field."""

from __future__ import annotations

import json
from typing import Any

import marshmallow
from apiflask import fields
from flask_wtf import FlaskForm
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict
from wtforms import FileField, MultipleFileField, PasswordField, StringField, TextAreaField
from wtforms.validators import InputRequired

from backend.domain.products import ProductFields, ProductPatchFields
from backend.errors import ImageRejected, LookalikeError

PRODUCT_FIELDS = ("sku", "title", "category", "brand", "price", "attributes", "url")


class AnalyticsQuery(marshmallow.Schema):
    start = fields.Date(data_key="from", load_default=None)
    end = fields.Date(data_key="to", load_default=None)


class LoginForm(FlaskForm):
    token = PasswordField("Admin token", validators=[InputRequired()])


class ActionForm(FlaskForm):
    """A button that changes something (log out, delete, retry, activate): only the CSRF token."""


class SearchForm(FlaskForm):
    image = FileField("Photo")


class PhotosForm(FlaskForm):
    images = MultipleFileField("Photos")


class ProductForm(FlaskForm):
    sku = StringField("SKU", description="1-64 letters, digits or . _ - /")
    title = StringField("Title")
    category = StringField("Category", description="e.g. dress")
    brand = StringField("Brand", description="optional")
    price = StringField("Price", description="optional, e.g. 49.90")
    attributes = TextAreaField("Attributes", description='optional JSON object, e.g. {"colour": "red"}')
    url = StringField("Page on your shop", description="optional, e.g. https://shop.example/p/42")
    images = MultipleFileField("Photos", description="one or more JPEG, PNG, GIF or WebP photos")

    def fill(self, product: Any) -> None:
        """Show a stored product's values (the edit page)."""
        self.sku.data, self.title.data, self.category.data = product.sku, product.title, product.category
        self.brand.data = product.brand or ""
        self.price.data = f"{product.price:.2f}" if product.price is not None else ""
        self.attributes.data = json_text(product.attributes) if product.attributes else ""
        self.url.data = product.url or ""

    def checked(self, *, patch: bool) -> dict[str, Any] | None:
        """The fields as the API's schema loads them, or None with the errors set beside each field.

        A blank optional field is left out when creating and cleared when editing."""
        data: dict[str, Any] = {}
        for name in PRODUCT_FIELDS:
            value = (getattr(self, name).data or "").strip()
            if value:
                data[name] = value
            elif patch and name in ("brand", "price", "url"):
                data[name] = None
            elif patch and name == "attributes":
                data[name] = {}
            elif patch:
                data[name] = ""  # a required field emptied: the schema says what is wrong
        schema = ProductPatchFields() if patch else ProductFields()
        try:
            loaded: dict[str, Any] = schema.load(data)
        except ValidationError as exc:
            for name, messages in exc.normalized_messages().items():
                self.add_error(name, messages)
            return None
        return loaded

    def add_error(self, name: str, messages: Any) -> None:
        field = getattr(self, name, None) or self.sku
        field.errors = [*field.errors, *(messages if isinstance(messages, list) else [str(messages)])]

    def refused(self, error: LookalikeError) -> None:
        """A refusal from the use case (a duplicate sku, a bad photo), beside the field it concerns."""
        name = "images" if isinstance(error, ImageRejected) else error.extra.get("field", "sku")
        self.add_error(name if name in (*PRODUCT_FIELDS, "images") else "sku", error.message)


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def load_args(schema: marshmallow.Schema, args: MultiDict[str, str]) -> dict[str, Any]:
    """Load a query string through a schema, blank values left out (an empty select means "any")."""
    data: dict[str, Any] = {}
    for name, field in schema.fields.items():
        key = field.data_key or name
        values = [v for v in args.getlist(key) if v.strip()]
        if values:
            data[key] = values if isinstance(field, fields.List) else values[0]
    loaded: dict[str, Any] = schema.load(data)
    return loaded
