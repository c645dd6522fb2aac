"""What every page shares: the CSRF check on every form, HTML error pages, and the admin's session."""

from __future__ import annotations

import hashlib
import logging
import secrets
import unicodedata
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import delete
from werkzeug.exceptions import HTTPException

from backend.core.extensions import db
from backend.core.security import token_fingerprint
from backend.db.models import AdminSession
from backend.errors import NotFound
from backend.index import IndexUnavailable

log = logging.getLogger(__name__)
csrf = CSRFProtect()  # checks only where a blueprint asks (WTF_CSRF_CHECK_DEFAULT is off): the API uses tokens
F = TypeVar("F", bound=Callable[..., Any])

MESSAGES = {
    400: "The request was not understood.",
    404: "There is no such page.",
    405: "That cannot be done here.",
    413: "The upload is too large.",
    429: "Too many requests from this address; try again in a minute.",
}


def error_page(status: int, message: str) -> tuple[str, int]:
    return render_template("error.html", status=status, message=message), status


# The largest body of a page form without photos (log in, edit a product, a button): read with at most this.
FORM_BODY_BYTES = 256 * 1024


def pages_blueprint(
    name: str,
    import_name: str,
    *,
    body_limits: Mapping[str, Callable[[], int]] | None = None,
    open_posts: Collection[str] | None = None,
    **options: Any,
) -> Blueprint:
    """A blueprint of pages: every POST carries a CSRF token, errors are pages (not the API's JSON).

    Before the CSRF check reads a POST's form: `body_limits` maps an endpoint to its largest body (any other takes
    FORM_BODY_BYTES), a larger one is refused (413); and where `open_posts` is given, a POST to any other endpoint
    from someone not logged in as the admin goes to the login page, its body unread."""
    bp = Blueprint(name, import_name, template_folder="templates", **options)
    bp.enable_openapi = False  # type: ignore[attr-defined]  # pages are not API operations (APIFlask reads this)
    limits = dict(body_limits or {})

    @bp.before_request
    def check_csrf() -> Any:
        if request.method != "POST":
            return None
        if open_posts is not None and request.endpoint not in open_posts and not is_admin():
            return to_login()
        limit = limits.get(request.endpoint or "")
        request.max_content_length = limit() if limit is not None else FORM_BODY_BYTES
        csrf.protect()
        return None

    @bp.errorhandler(CSRFError)
    def csrf_error(error: CSRFError) -> Any:
        return error_page(400, f"The form was not sent from this site or has expired ({error.description}).")

    @bp.errorhandler(NotFound)
    def not_found(error: NotFound) -> Any:
        return error_page(404, MESSAGES[404])

    @bp.errorhandler(IndexUnavailable)
    def index_unavailable(error: IndexUnavailable) -> Any:
        log.warning("page %s: vector index unavailable: %s", request.path, error)
        return error_page(503, "The search index is unavailable; try again shortly.")

    @bp.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Any:
        status = error.code or 500
        return error_page(status, MESSAGES.get(status, error.description or "Something went wrong."))

    return bp


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_admin_session(lifetime: timedelta) -> None:
    """Log the admin in: a new session kept on the server (expired ones pruned here), its random id in the signed
    cookie beside the token's fingerprint. Committed."""
    now = datetime.now(UTC)
    session_id = secrets.token_urlsafe(32)
    db.session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    db.session.add(AdminSession(id=_digest(session_id), created_at=now, expires_at=now + lifetime))
    db.session.commit()
    session.clear()
    session["admin"] = token_fingerprint()
    session["sid"] = session_id
    session.permanent = True


def close_admin_session() -> None:
    """Log out: the session ends on the server, for every copy of its cookie. Committed."""
    session_id = session.get("sid")
    if session_id:
        db.session.execute(delete(AdminSession).where(AdminSession.id == _digest(session_id)))
        db.session.commit()
    session.clear()


def is_admin() -> bool:
    """A cookie signed with the current token's fingerprint, whose session is still open on the server."""
    if not session.get("admin") or session.get("admin") != token_fingerprint():
        return False
    if "admin_alive" not in g:
        session_id = session.get("sid")
        row = db.session.get(AdminSession, _digest(session_id)) if isinstance(session_id, str) else None
        g.admin_alive = row is not None and row.expires_at > datetime.now(UTC)
    return bool(g.admin_alive)


def to_login() -> Any:
    """To the login page, and back to this page after it."""
    return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            return to_login()
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only. No whitespace or control characters at all: browsers
    drop a tab or a newline, so `/\t/evil.example` is `//evil.example` to them (and a newline in a Location
    header is refused with a 500)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(c.isspace() or unicodedata.category(c).startswith("C") for c in target)
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("admin.status")
