"""Products link to the shop: an optional, checked `url` in the API, the feeds and the similar items; the
similar items by sku, as a shop's own page knows its products."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.utils import images
from tests.utils.api import upload
from tests.utils.cli import cli_runner
from tests.utils.feeds import copy_photos, feed_rows, write_jsonl
from tests.utils.settings import AUTH

PAGE = "https://shop.example/p/dress-1?colour=red"


def test_a_url_is_kept_shown_changed_and_cleared(client: Any) -> None:
    made = upload(client, "LINKED", images.png(1), url=PAGE)
    assert made.status_code == 201, made.json
    assert made.json["url"] == PAGE and client.get(f"/api/v1/products/{made.json['id']}").json["url"] == PAGE
    plain = upload(client, "PLAIN", images.png(2)).json
    assert plain["url"] is None
    similar = client.get(f"/api/v1/products/{plain['id']}/similar").json["items"]
    assert [(i["product"]["sku"], i["product"]["url"]) for i in similar] == [("LINKED", PAGE)]
    changed = client.patch(f"/api/v1/products/{made.json['id']}", json={"url": "http://shop.example/x"}, headers=AUTH)
    assert changed.status_code == 200 and changed.json["url"] == "http://shop.example/x"
    cleared = client.patch(f"/api/v1/products/{made.json['id']}", json={"url": None}, headers=AUTH)
    assert cleared.status_code == 200 and cleared.json["url"] is None


@pytest.mark.parametrize(
    "url", ["/p/1", "shop.example/p/1", "ftp://shop.example/p/1", "javascript:alert(1)", "https://" + "a" * 2050]
)
def test_a_url_that_is_not_an_absolute_web_address_is_400_and_nothing_is_stored(client: Any, url: str) -> None:
    refused = upload(client, "BAD-URL", images.png(1), url=url)
    assert refused.status_code == 400 and refused.json["field"] == "url", refused.json
    assert client.get("/api/v1/products").json["total"] == 0


def test_similar_items_by_sku_answer_as_by_id(client: Any) -> None:
    one = upload(client, "shop/DRESS-1", images.png(1)).json  # a sku may hold a slash
    upload(client, "DRESS-2", images.png(2))
    upload(client, "DRESS-3", images.png(3))
    by_id = client.get(f"/api/v1/products/{one['id']}/similar?limit=2").json
    by_sku = client.get("/api/v1/products/sku/shop/DRESS-1/similar?limit=2").json
    assert by_sku == by_id and len(by_sku["items"]) == 2
    missing = client.get("/api/v1/products/sku/NOPE/similar")
    assert missing.status_code == 404 and missing.json["field"] == "sku" and "NOPE" in missing.json["message"]
    bad = client.get("/api/v1/products/sku/DRESS-2/similar?limit=0")
    assert bad.status_code == 400 and bad.json["field"] == "limit"


def test_a_feed_sets_the_url_and_skips_a_row_with_a_bad_one(app: Any, tmp_path: Path) -> None:
    rows = feed_rows(per_category=1, categories=("dress", "hat"))
    copy_photos(rows, tmp_path)
    rows[0]["url"] = PAGE
    rows[1]["url"] = "not a url"
    result = cli_runner(app).invoke(args=["import", str(write_jsonl(tmp_path / "feed.jsonl", rows))])
    assert result.exit_code == 3, result.output
    assert "2 rows: 1 created" in result.output and "bad url" in result.output
    client = app.test_client()
    (product,) = client.get("/api/v1/products").json["items"]
    assert product["url"] == PAGE
