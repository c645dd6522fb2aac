"""A person's visit, in Debian's chromium against a real `lookalike serve`: log in, create products through the
form, see them in the catalog, open one and see its look-alikes, search by a photo, and the refusals."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.utils.browser import broken_images, browser_page, image_count
from tests.utils.datasets import photos_of
from tests.utils.server import running_server

pytestmark = pytest.mark.slow


def product_total(base: str) -> int:
    return int(httpx.get(f"{base}/api/v1/products?per_page=1").json()["total"])


def test_an_admin_and_a_shopper_visit(tmp_path: Path) -> None:
    dresses, hats = photos_of("dress", 3), photos_of("hat", 2)
    with running_server(tmp_path) as (base, token), browser_page(base) as (page, console_errors):
        # The catalog starts empty; the admin pages want a login.
        page.goto("/")
        assert "0 products" in page.inner_text(".count")
        page.goto("/admin/products/new")
        assert page.url.startswith(f"{base}/admin/login")

        # A wrong token: one message, whatever was typed.
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        assert page.inner_text("#token-error") == "That is not the admin token."

        page.fill("#token", token)
        page.click("button[type=submit]")
        assert page.url == f"{base}/admin/products/new"  # back where the login was asked for
        cookie = next(c for c in page.context.cookies() if c["name"] == "lookalike_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"

        # Two products through the form, the first with two photos (previewed before they are sent).
        for sku, title, category, price, photos in (
            ("DRESS-1", "Summer dress", "dress", "49.90", dresses[:2]),
            ("HAT-1", "Straw hat", "hat", "19.00", hats[:1]),
        ):
            page.goto("/admin/products/new")
            page.fill("#sku", sku)
            page.fill("#title", title)
            page.fill("#category", category)
            page.fill("#brand", "acme")
            page.fill("#price", price)
            page.fill("#attributes", '{"colour": "red"}')
            page.set_input_files("#images", [str(p) for p in photos])
            page.locator("#photo-previews img").nth(len(photos) - 1).wait_for()
            assert broken_images(page, "#photo-previews img") == []
            page.click("#product-form button[type=submit]")
            assert re.fullmatch(rf"{base}/products/\d+", page.url)
            assert title in page.inner_text("h1")
            assert f"Created {sku}" in page.inner_text(".flash")
        assert product_total(base) == 2

        # The catalog grid: both products, every picture loaded (thumbnails, not the photos).
        page.goto("/")
        assert image_count(page, "#catalog img") == 2
        assert broken_images(page, "#catalog img") == []
        sources = page.eval_on_selector_all("#catalog img", "imgs => imgs.map(i => i.getAttribute('src'))")
        assert all(src.startswith("/media/thumbs/") for src in sources)
        assert "Summer dress" in page.inner_text("#catalog") and "49.90" in page.inner_text("#catalog")

        # Filters: only the hats.
        page.select_option("select[name=category]", "hat")
        page.click(".bar button[type=submit]")
        assert page.inner_text(".count") == "1 product"
        assert "Straw hat" in page.inner_text("#catalog")

        # A product page: its two photos and its look-alike as a picture, with its distance.
        page.goto("/")
        page.click("a.card:has-text('Summer dress')")
        assert image_count(page, ".photos img") == 2
        assert image_count(page, "#lookalikes img") == 1
        assert broken_images(page) == []
        assert "Straw hat" in page.inner_text("#lookalikes")
        assert re.search(r"d = \d+\.\d{3}", page.inner_text("#lookalikes"))

        # Search by an uploaded photo: the look-alikes of a photo that is not stored.
        page.goto("/search")
        page.set_input_files("#image", str(dresses[2]))
        page.click("form.search button[type=submit]")
        assert image_count(page, "#lookalikes img") == 2
        assert broken_images(page) == []
        assert page.get_attribute("#query-photo", "src").startswith("data:image/jpeg;base64,")
        assert product_total(base) == 2  # nothing stored

        # A form without its CSRF token is refused (400) and stores nothing.
        page.goto("/admin/products/new")
        page.fill("#sku", "NO-TOKEN")
        page.fill("#title", "No token")
        page.fill("#category", "dress")
        page.set_input_files("#images", str(dresses[2]))
        page.eval_on_selector("#product-form input[name=csrf_token]", "input => input.remove()")
        with page.expect_response(lambda r: r.request.method == "POST") as posted:
            page.click("#product-form button[type=submit]")
        assert posted.value.status == 400
        assert "not sent from this site" in page.inner_text(".error")

        # A file that is not an image: the error beside the photos field, nothing stored.
        not_image = tmp_path / "notes.jpg"
        not_image.write_text("these are notes, not a photo")
        page.goto("/admin/products/new")
        page.fill("#sku", "BAD-PHOTO")
        page.fill("#title", "Bad photo")
        page.fill("#category", "dress")
        page.set_input_files("#images", str(not_image))
        page.click("#product-form button[type=submit]")
        assert "not a JPEG, PNG, GIF or WebP image" in page.inner_text("#images-error")
        assert page.input_value("#sku") == "BAD-PHOTO"  # what was typed is kept
        assert product_total(base) == 2

        # Log out: the admin pages ask for the login again.
        page.click("header button:has-text('Log out')")
        assert "Logged out." in page.inner_text(".flash")
        page.goto("/admin/status")
        assert page.url.startswith(f"{base}/admin/login")

        # Nothing the pages load was refused by the CSP or failed in a script.
        assert [e for e in console_errors if "status of 4" not in e] == []


def test_api_docs_work_offline(tmp_path: Path) -> None:
    """/docs loads Swagger UI from the app itself: the page renders the API's title and operations."""
    with running_server(tmp_path) as (base, _), browser_page(base) as (page, console_errors):
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto("/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        assert "Lookalike API" in page.inner_text(".swagger-ui .info .title")
        assert page.locator(".opblock-summary-path", has_text="/api/v1/search").count() == 1
        assert [url for url in requested if not url.startswith(base)] == []
        assert console_errors == []
