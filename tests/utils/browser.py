"""Debian's chromium driven by Playwright's Python package (no browser download: `executable_path`)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def chromium_path() -> str:
    """The browser; a missing one fails the browser tests (never a silent skip): `apt-get install chromium`."""
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        pytest.fail(
            f"Debian's chromium is required for the browser tests (apt-get install chromium); not at {CHROMIUM}"
        )
    return path


@contextmanager
def browser_page(base_url: str) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page on `base_url` and the console errors it collects (CSP refusals land there)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(20_000)
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def broken_images(page: Any, selector: str = "img") -> list[str]:
    """The `src` of every matching picture that did not load (naturalWidth 0), once each has finished.

    Polled from here: Playwright's wait_for_function evaluates a string, which the pages' CSP refuses."""
    deadline = time.monotonic() + 20
    while not page.eval_on_selector_all(selector, "imgs => imgs.every(img => img.complete)"):
        assert time.monotonic() < deadline, f"pictures {selector} still loading after 20 s"
        time.sleep(0.1)
    return list(
        page.eval_on_selector_all(
            selector, "imgs => imgs.filter(img => !(img.naturalWidth > 0)).map(img => img.getAttribute('src'))"
        )
    )


def image_count(page: Any, selector: str) -> int:
    return int(page.eval_on_selector_all(selector, "imgs => imgs.length"))


def log_in_to(page: Any, base_url: str, token: str, path: str) -> None:
    """Open an admin page, log in on the form it redirects to, and land on it."""
    page.goto(path)
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{path}")
