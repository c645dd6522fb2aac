"""A shopper steers the look-alikes in chromium: "more like this", "less like this", and a box dragged on the
search preview."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.utils.browser import broken_images, browser_page
from tests.utils.datasets import photos_of
from tests.utils.server import running_server

pytestmark = pytest.mark.slow


def lookalike_ids(page: object) -> list[int]:
    return [
        int(x) for x in page.eval_on_selector_all("#lookalikes .steerable", "els => els.map(e => e.dataset.product)")
    ]  # type: ignore[attr-defined]


def test_more_and_less_like_this_and_a_box_on_the_search_preview(tmp_path: Path) -> None:
    photos = [*photos_of("dress", 4), *photos_of("shoes", 2)]
    with running_server(tmp_path) as (base, token), browser_page(base) as (page, console_errors):
        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for n, path in enumerate(photos):
            files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
            data = {"sku": f"P{n}", "title": f"Item {n}", "category": "dress" if n < 4 else "shoes"}
            response = httpx.post(f"{base}/api/v1/products", data=data, files=files, headers=auth, timeout=60)
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])

        page.goto(f"/products/{ids[0]}")
        before = lookalike_ids(page)
        assert len(before) == 5 and ids[0] not in before
        assert broken_images(page, "#lookalikes img") == []
        liked = before[-1]  # the least alike: "more like this" brings it and its look-alikes forward
        page.click(f'.steerable[data-product="{liked}"] .more-like')
        page.wait_for_url(re.compile(rf".*like={liked}.*"))
        after = lookalike_ids(page)
        assert after[0] == liked and sorted(after) == sorted(before)
        assert "More like 1, less like 0" in page.inner_text("#steering")

        unliked = after[1]
        page.click(f'.steerable[data-product="{unliked}"] .less-like')
        page.wait_for_url(re.compile(rf".*unlike={unliked}.*"))
        steered = lookalike_ids(page)
        assert unliked not in steered and steered[0] == liked  # the like is kept, the unliked one is gone
        page.click("#reset-steering")
        assert lookalike_ids(page) == before

        # Search by a photo, only the part of it dragged on the preview.
        page.goto("/search")
        page.set_input_files("#image", str(photos[4]))
        preview = page.locator("#search-preview img")
        preview.wait_for()
        box = preview.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.1, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.7, steps=5)
        page.mouse.up()
        value = page.input_value("#box")
        x, y, w, h = (float(v) for v in value.split(","))
        assert x == pytest.approx(0.1, abs=0.02) and w == pytest.approx(0.5, abs=0.02)
        assert y == pytest.approx(0.2, abs=0.02) and h == pytest.approx(0.5, abs=0.02)
        assert page.locator(".box-mark").is_visible()
        page.click("form.search button[type=submit]")
        page.locator("#lookalikes").wait_for()
        assert len(page.locator("#lookalikes .card").all()) > 0 and broken_images(page, "#lookalikes img") == []
        assert console_errors == []
