"""Helpers for the pages through Flask's test client: CSRF tokens, logging in, reading what a page shows."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.utils.settings import TOKEN

CSRF = re.compile(r'name="csrf_token"[^>]*? value="([^"]+)"')


def csrf_token(client: Any, path: str = "/admin/login") -> str:
    match = CSRF.search(client.get(path).get_data(as_text=True))
    assert match, f"{path} has a form with a CSRF token"
    return match.group(1)


def log_in(client: Any, token: str = TOKEN) -> Any:
    return client.post("/admin/login", data={"token": token, "csrf_token": csrf_token(client)})


def post_form(client: Any, path: str, data: dict[str, Any], *, token_from: str | None = None) -> Any:
    """POST a form as the page at `token_from` (default: `path`) would, with its CSRF token."""
    form = {"csrf_token": csrf_token(client, token_from or path), **data}
    return client.post(path, data=form, content_type="multipart/form-data")


def errors(response: Any) -> dict[str, list[str]]:
    """The messages shown beside each field (`<p class="error" id="FIELD-error">`)."""
    shown: dict[str, list[str]] = {}
    for field, text in re.findall(r'<p class="error" id="([\w-]+)-error">([^<]*)</p>', response.get_data(as_text=True)):
        shown.setdefault(field, []).append(html.unescape(text))
    return shown


def cards(response: Any) -> list[int]:
    """The product ids of the cards on a page, in order."""
    return [
        int(i) for i in re.findall(r'class="card" href="[^"]*" data-product="(\d+)"', response.get_data(as_text=True))
    ]
