"""Security headers on every response."""

from __future__ import annotations

from flask import Response, request


def content_policy(*, script: str, style: str, img: str) -> str:
    """A CSP: everything from this site only, nothing may frame the page; `script`, `style`, `img` add sources."""
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {script}",
            f"style-src {style}",
            f"img-src {img}",
            "connect-src 'self'",
            "form-action 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


# The pages load only what the app serves: scripts and styles from files (no inline code), photos from /media,
# previews of chosen files as blob: URLs and the search page's photo as a data: URL.
PAGE_POLICY = content_policy(script="'self'", style="'self'", img="'self' data: blob:")
# /docs: Swagger UI's page (APIFlask's template) starts it with an inline script; its files are served here too.
DOCS_POLICY = content_policy(script="'self' 'unsafe-inline'", style="'self' 'unsafe-inline'", img="'self' data:")


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
