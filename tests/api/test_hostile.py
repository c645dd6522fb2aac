"""Hostile input over HTTP: photo shapes that would blow up the resize, JSON that would break every page."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from backend.domain.products import ATTRIBUTES_MAX_BYTES, ATTRIBUTES_MAX_DEPTH
from tests.utils import images
from tests.utils.api import upload
from tests.utils.probes import run_python
from tests.utils.settings import AUTH

MEMORY_PROBE = """
import io, json, resource, sys
from pathlib import Path
from tests.utils import images
from tests.utils.apps import migrated_app
from tests.utils.settings import make_settings

def search(client, data):
    form = {"image": (io.BytesIO(data), "p.png")}
    return client.post("/api/v1/search", data=form, content_type="multipart/form-data")

with migrated_app(make_settings(Path(sys.argv[1]))) as app:
    client = app.test_client()
    assert search(client, images.png(1)).status_code == 200  # the model is loaded: what follows is the photo's cost
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answers = [search(client, data) for data in (images.thin_png(6000), images.png_header(40_000_000, 1))]
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"answers": [[r.status_code, r.json["error"]] for r in answers], "grown_kb": grown}))
"""


def test_thin_and_tall_photos_are_refused_with_bounded_memory(tmp_path: Path) -> None:
    """A 6000x1 PNG (87 bytes) and a 40,000,000x1 one: 400 bad_aspect_ratio, and the peak memory stays put
    (with the aspect check switched off, the 6000x1 photo alone cost 104 MB in the resize at these 64 px)."""
    result = run_python(MEMORY_PROBE, str(tmp_path / "var"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["answers"] == [[400, "bad_aspect_ratio"], [400, "bad_aspect_ratio"]]
    assert report["grown_kb"] < 40 * 1024, report


def test_a_turned_photo_is_stored_with_its_viewed_size(client: Any) -> None:
    image = upload(client, "TURNED", images.rotated_jpeg(60, 30, orientation=6)).json["images"][0]
    assert (image["width"], image["height"]) == (30, 60) and image["status"] == "indexed"


BAD_ATTRIBUTES = [
    pytest.param('{"a": NaN}', "NaN", id="nan"),
    pytest.param('{"a": -Infinity}', "NaN", id="infinity"),
    pytest.param("[" * 2000 + "]" * 2000, "", id="nested-2000-list"),
    pytest.param('{"a": ' * 2000 + "1" + "}" * 2000, "", id="nested-2000"),
    pytest.param(json.dumps({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}), "nested", id="depth-9"),
    pytest.param(json.dumps({"a": "x\u0000y"}), "NUL", id="nul"),
    pytest.param(json.dumps({"a": "x" * ATTRIBUTES_MAX_BYTES}), "bytes", id="oversized"),
]


@pytest.mark.parametrize(("attributes", "says"), BAD_ATTRIBUTES)
def test_bad_attributes_are_a_400_naming_the_field_on_create(client: Any, attributes: str, says: str) -> None:
    response = upload(client, "BAD", images.png(1), attributes=attributes)
    assert response.status_code == 400, response.json
    assert response.json["field"] == "attributes" and says in response.json["message"]
    assert client.get("/api/v1/products").json["total"] == 0


@pytest.mark.parametrize(("attributes", "says"), BAD_ATTRIBUTES)
def test_bad_attributes_are_a_400_naming_the_field_on_patch(client: Any, attributes: str, says: str) -> None:
    product = upload(client, "GOOD", images.png(1), attributes='{"colour": "red"}').json
    body = '{"attributes": ' + attributes + "}"
    response = client.patch(
        f"/api/v1/products/{product['id']}", data=body, headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.json
    assert response.json["field"] == "attributes" and says in response.json["message"]
    listing = client.get("/api/v1/products")
    assert listing.json["items"][0]["attributes"] == {"colour": "red"}  # nothing stored, the page stays valid JSON
    json.loads(listing.data, parse_constant=lambda name: pytest.fail(f"{name} in a page"))


def test_the_deepest_and_largest_accepted_attributes_are_stored(client: Any) -> None:
    deep: Any = 1
    for _ in range(ATTRIBUTES_MAX_DEPTH - 1):
        deep = {"k": deep}
    big = {"text": "x" * (ATTRIBUTES_MAX_BYTES - 20)}
    for sku, attributes in (("DEEP", deep), ("BIG", big)):
        response = upload(client, sku, images.png(1), attributes=json.dumps(attributes))
        assert response.status_code == 201, response.json
        assert response.json["attributes"] == attributes


@pytest.mark.parametrize("price", ["9999999999.99", "0"])
def test_every_price_the_schema_accepts_fits_the_column(client: Any, price: str) -> None:
    response = upload(client, "P" + price.replace(".", ""), images.png(1), price=price)
    assert response.status_code == 201, response.json
    assert math.isclose(response.json["price"], float(price))


@pytest.mark.parametrize("price", ["1e10", "10000000000", "-1", "NaN", "Infinity"])
def test_prices_past_the_column_are_a_400(client: Any, price: str) -> None:
    response = upload(client, "P", images.png(1), price=price)
    assert response.status_code == 400 and response.json["field"] == "price"
    product = upload(client, "Q", images.png(2)).json
    patched = client.patch(f"/api/v1/products/{product['id']}", json={"price": float(price)}, headers=AUTH)
    assert patched.status_code == 400 and patched.json["field"] == "price"
