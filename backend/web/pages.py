"""What every page shares: the CSRF check on every form, HTML error pages, and the admin's session."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from backend.errors import NotFound
from backend.index import IndexUnavailable
from backend.security import token_fingerprint

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


def pages_blueprint(
    name: str, import_name: str, *, body_limits: Mapping[str, Callable[[], int]] | None = None, **options: Any
) -> Blueprint:
    """A blueprint of pages: every POST carries a CSRF token, errors are pages (not the API's JSON).

    `body_limits` maps an endpoint to its largest body, refused (413) before the CSRF check reads the form."""
    bp = Blueprint(name, import_name, template_folder="templates", **options)
    bp.enable_openapi = False  # type: ignore[attr-defined]  # pages are not API operations (APIFlask reads this)
    limits = dict(body_limits or {})

    @bp.before_request
    def check_csrf() -> None:
        if request.method == "POST":
            if request.endpoint in limits:
                request.max_content_length = limits[request.endpoint]()
            csrf.protect()

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


def is_admin() -> bool:
    return bool(session.get("admin")) and session.get("admin") == token_fingerprint()


def admin_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this site only."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("admin.status")
