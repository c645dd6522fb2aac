"""CORS for the shop's own pages: ALLOWED_ORIGINS may read the public calls from the browser; other origins, and
every write, get no CORS header (the browser refuses the answer); empty by default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.utils import images
from tests.utils.api import upload
from tests.utils.settings import AUTH, make_settings

SHOP = "https://shop.example"


@pytest.fixture
def shop(make_app: Any) -> Any:
    client = make_app("cors", allowed_origins=f"{SHOP}, http://127.0.0.1:8001").test_client()
    upload(client, "A-1", images.png(1))
    upload(client, "A-2", images.png(2))
    return client


def test_an_allowed_origin_reads_the_similar_items_and_sees_the_model(shop: Any) -> None:
    answer = shop.get("/api/v1/products/sku/A-1/similar", headers={"Origin": SHOP})
    assert answer.status_code == 200 and answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert "Origin" in answer.headers["Vary"]
    assert answer.headers["Access-Control-Expose-Headers"] == "X-Lookalike-Model, X-Lookalike-Arm"
    assert answer.headers["X-Lookalike-Model"] == answer.json["model_version"]
    missing = shop.get("/api/v1/products/sku/NOPE/similar", headers={"Origin": SHOP})
    assert missing.status_code == 404 and missing.headers["Access-Control-Allow-Origin"] == SHOP  # a page sees why
    listing = shop.get("/api/v1/products", headers={"Origin": "http://127.0.0.1:8001"})
    assert listing.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:8001"


def test_another_origin_gets_no_cors_header(shop: Any) -> None:
    answer = shop.get("/api/v1/products/1/similar", headers={"Origin": "https://evil.example"})
    assert answer.status_code == 200 and "Access-Control-Allow-Origin" not in answer.headers
    assert "Origin" in answer.headers["Vary"]
    preflight = shop.options(
        "/api/v1/search", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers


def test_a_preflight_names_what_a_public_call_allows_and_writes_stay_closed(shop: Any) -> None:
    asked = {"Origin": SHOP, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    search = shop.options("/api/v1/search", headers=asked)
    assert search.status_code == 200 and search.headers["Access-Control-Allow-Origin"] == SHOP
    assert search.headers["Access-Control-Allow-Methods"] == "POST"
    assert search.headers["Access-Control-Allow-Headers"] == "Content-Type"
    for path, method in (
        ("/api/v1/products", "POST"),
        ("/api/v1/products/1", "PATCH"),
        ("/api/v1/products/1", "DELETE"),
    ):
        write = shop.options(path, headers={**asked, "Access-Control-Request-Method": method})
        assert "Access-Control-Allow-Origin" not in write.headers, (path, method)
    read = shop.options("/api/v1/products/1", headers={**asked, "Access-Control-Request-Method": "GET"})
    assert read.headers["Access-Control-Allow-Methods"] == "GET"
    made = shop.post("/api/v1/products", data={"sku": "X"}, headers={**AUTH, "Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in made.headers  # a write answers no page of another site
    assert "Access-Control-Allow-Origin" not in shop.get("/api/v1/stats", headers={"Origin": SHOP}).headers


def test_no_origin_is_allowed_by_default(client: Any) -> None:
    upload(client, "B-1", images.png(1))
    answer = client.get("/api/v1/products", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in answer.headers


@pytest.mark.parametrize("bad", ["shop.example", "https://shop.example/path", "ftp://shop.example", "*"])
def test_allowed_origins_are_origins(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValidationError, match="ALLOWED_ORIGINS"):
        make_settings(tmp_path, allowed_origins=bad)
    assert make_settings(tmp_path, allowed_origins="HTTPS://Shop.Example/").origins == {"https://shop.example"}
