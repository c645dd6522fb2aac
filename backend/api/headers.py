"""Security headers on every response."""

from __future__ import annotations

from flask import Response

# The one HTML page today is /docs, whose Swagger UI assets come from jsDelivr (APIFlask's default);
# nothing may frame any page.
HTML_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net",
        "img-src 'self' data: https://apiflask.com https://cdn.jsdelivr.net",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def security_headers(response: Response) -> Response:
    """nosniff everywhere (a photo is never run as a script), no referrer, and a CSP on HTML."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", HTML_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
    return response
