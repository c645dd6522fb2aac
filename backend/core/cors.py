"""Cross-origin access for the shop's own pages (ALLOWED_ORIGINS, empty by default): the public read calls and
the shopper events only. A write never answers with CORS headers, so a browser never lets another site make one.

A simple GET (the widget's) is answered with `Access-Control-Allow-Origin: <the origin>`; a preflight (OPTIONS
with `Access-Control-Request-Method`) of an allowed origin for a public call gets the methods and headers it may
use. Other origins get no CORS header at all: the browser refuses the answer to the page."""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from backend.config import current_settings

# Endpoints a shop's page may call from the browser: reads that need no token, and the events call.
PUBLIC = frozenset(
    {
        "similar.similar_to_product",
        "similar.similar_to_sku",
        "similar.similar_to_stored_photo",
        "similar.search_by_photo",
        "products.list_",
        "products.get",
        "events.record",
    }
)
# What a page may send: JSON (the events), or a multipart photo (the search, a simple request anyway).
ALLOWED_HEADERS = "Content-Type"
PREFLIGHT_MAX_AGE_S = 600
# Headers a page's script may read: which model, and which experiment arm, answered.
EXPOSED = "X-Lookalike-Model, X-Lookalike-Arm"


def _public_endpoint(method: str) -> str | None:
    """The endpoint `method` on this path reaches, when it is a public one (a preflight names the method)."""
    if method == request.method:
        return request.endpoint if request.endpoint in PUBLIC else None
    try:
        endpoint, _ = current_app.url_map.bind("").match(request.path, method=method)
    except HTTPException:
        return None
    return str(endpoint) if endpoint in PUBLIC else None


def cors_headers(response: Response) -> Response:
    origin = request.headers.get("Origin")
    if origin is None:
        return response
    preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
    method = request.headers["Access-Control-Request-Method"].upper() if preflight else request.method
    endpoint = _public_endpoint(method)
    if endpoint is None:
        return response
    response.vary.add("Origin")  # the answer differs by origin: caches keep them apart
    if origin.lower() not in current_settings().origins:
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    if preflight:
        methods = current_app.url_map.bind("").allowed_methods(request.path)
        response.headers["Access-Control-Allow-Methods"] = ", ".join(
            m for m in sorted(methods) if m in ("GET", "POST") and _public_endpoint(m)
        )
        response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
        response.headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE_S)
    else:
        response.headers["Access-Control-Expose-Headers"] = EXPOSED
    return response


def register_cors(app: Flask) -> None:
    app.after_request(cors_headers)
