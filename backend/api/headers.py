"""Security headers on every response."""

from __future__ import annotations

from flask import Response, request

# The pages load only what the app serves: scripts and styles from files (no inline code), photos from /media,
# previews of chosen files as blob: URLs and the search page's photo as a data: URL.
PAGE_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
# /docs: Swagger UI's page (APIFlask's template) starts it with an inline script; its files are served here too.
DOCS_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)


def security_headers(response: Response) -> Response:
    """nosniff everywhere (a photo is never run as a script), no referrer off the site, and a CSP on HTML."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "text/html":
        docs = request.path.startswith("/docs")
        response.headers.setdefault("Content-Security-Policy", DOCS_POLICY if docs else PAGE_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        # Same-origin: the CSRF check on HTTPS compares the Referer with the host (a form posted from this site).
        response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
