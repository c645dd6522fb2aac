"""Helpers to call the API the way a shop's admin would."""

from __future__ import annotations

import io
from typing import Any

from tests.utils.settings import AUTH


def upload(client: Any, sku: str, *photos: bytes, headers: dict[str, str] | None = None, **fields: Any) -> Any:
    data: dict[str, Any] = {"sku": sku, "title": f"Product {sku}", "category": "dress", **fields}
    data["images"] = [(io.BytesIO(photo), f"{sku}-{i}.png") for i, photo in enumerate(photos)]
    return client.post(
        "/api/v1/products", data=data, headers=AUTH if headers is None else headers, content_type="multipart/form-data"
    )


def add_photos(client: Any, product_id: int, *photos: bytes) -> Any:
    data = {"images": [(io.BytesIO(photo), f"extra-{i}.png") for i, photo in enumerate(photos)]}
    return client.post(
        f"/api/v1/products/{product_id}/images", data=data, headers=AUTH, content_type="multipart/form-data"
    )
