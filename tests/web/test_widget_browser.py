"""The widget on a shop's own page, in Debian's chromium: a plain HTML page served from another origin (a second
local port) with the two lines a shop adds shows the look-alikes, every picture loaded, each a keyboard-reachable
link to the product's page, whose impression and click the analytics read back; an unknown sku leaves its element
empty with one warning; the same page from an
origin not in ALLOWED_ORIGINS shows nothing, and the browser reports the CORS refusal."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.utils.browser import broken_images, browser_page
from tests.utils.datasets import photos_of
from tests.utils.server import free_port, running_server

pytestmark = pytest.mark.slow


@contextmanager
def shop_site(folder: Path, port: int) -> Iterator[None]:
    """The shop's own web server: static files on 127.0.0.1:`port` (reachable as localhost too)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_the_widget_on_a_page_of_another_origin(tmp_path: Path) -> None:
    shop_port = free_port()
    shop = f"http://127.0.0.1:{shop_port}"
    site = tmp_path / "site"
    (site / "p").mkdir(parents=True)
    with running_server(tmp_path, env={"ALLOWED_ORIGINS": shop}) as (base, token):
        auth = {"Authorization": f"Bearer {token}"}
        titles = {}
        for n, photo in enumerate(photos_of("dress", 5)):
            sku, title = f"DRESS-{n}", f"Dress number {n}"
            data = {
                "sku": sku,
                "title": title,
                "category": "dress",
                "price": f"{20 + n}.50",
                "url": f"{shop}/p/{sku}.html",
            }
            files = [("images", (photo.name, photo.read_bytes(), "image/jpeg"))]
            assert httpx.post(f"{base}/api/v1/products", data=data, files=files, headers=auth).status_code == 201
            (site / "p" / f"{sku}.html").write_text(f"<!doctype html><title>{title}</title><h1>{title}</h1>")
            titles[sku] = title
        (site / "page.html").write_text(
            "<!doctype html><html lang='en'><title>Dress 0</title><h1>Dress 0</h1>\n"
            f'<script src="{base}/widget.js" async></script>\n'
            '<div id="row" data-lookalike-sku="DRESS-0" data-limit="3" data-title="You may also like"></div>\n'
            '<div id="unknown" data-lookalike-sku="NO-SUCH-SKU"></div>\n'
        )
        with shop_site(site, shop_port), browser_page(shop) as (page, errors):
            warnings: list[str] = []
            page.on("console", lambda message: warnings.append(message.text) if message.type == "warning" else None)
            page.goto("/page.html")
            page.locator("#row .lookalike-card").nth(2).wait_for()
            page.locator("#unknown[data-lookalike-state=failed]").wait_for(state="attached")
            cards = page.locator("#row .lookalike-card")
            page_model = page.get_attribute("#row", "data-lookalike-model")
            assert cards.count() == 3 and broken_images(page, "#row img") == []
            shown = page.eval_on_selector_all("#row img", "imgs => imgs.map(img => img.alt)")
            assert set(shown) <= set(titles.values()) - {"Dress number 0"} and len(set(shown)) == 3
            assert page.inner_text("#row .lookalike-heading") == "You may also like"
            assert "$" not in page.inner_text("#row") and ".50" in page.inner_text("#row .lookalike-price >> nth=0")
            assert page.inner_html("#unknown") == ""
            assert [w for w in warnings if "Lookalike" in w] == [
                "Lookalike: no look-alikes for sku \"NO-SUCH-SKU\": 404 no product with sku 'NO-SUCH-SKU'"
            ]
            assert errors == [] or all("404" in e for e in errors)  # the 404 itself, as the browser logs it
            page.keyboard.press("Tab")
            focused = page.evaluate("document.activeElement.getAttribute('href')")
            first = cards.nth(0).locator("a").get_attribute("href")
            assert focused == first and first.startswith(f"{shop}/p/DRESS-")
            page.keyboard.press("Enter")
            page.wait_for_url(first)
            assert page.inner_text("h1") in titles.values()
            # The impression of the row and the click on its first look-alike, read back as the admin reads them.
            deadline = time.monotonic() + 20
            while True:
                report = httpx.get(f"{base}/api/v1/analytics", headers=auth).json()["by_model"]
                if (report and report[0]["clicks"] == 1) or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            (row,) = report
            assert (row["impressions"], row["clicks"], row["ctr"], row["ctr_by_position"]) == (1, 1, 1.0, {"1": 1.0})
            assert row["model_version"] == page_model

            # The same page from an origin the API does not list: nothing shown, the CORS refusal reported.
            errors.clear()
            page.goto(f"http://localhost:{shop_port}/page.html")
            page.locator("#row[data-lookalike-state=failed]").wait_for(state="attached")
            assert page.inner_html("#row") == ""
            assert any("blocked by CORS policy" in e for e in errors), errors

        widget = httpx.get(f"{base}/widget.js")
        assert widget.status_code == 200 and widget.headers["content-type"].startswith("text/javascript")
        assert len(widget.content) < 12_000 and "://" not in widget.text.split("*/", 1)[1]  # no other host
        again = httpx.get(f"{base}/widget.js", headers={"If-None-Match": widget.headers["ETag"]})
        assert again.status_code == 304
