"""Admin token check for every write: `Authorization: Bearer <ADMIN_TOKEN>`."""

from __future__ import annotations

from apiflask import HTTPTokenAuth

from backend.api.errors import ApiError
from backend.core.security import is_admin_token, wait_after_failures

admin_auth = HTTPTokenAuth(scheme="Bearer", description="the ADMIN_TOKEN setting")


@admin_auth.verify_token
def verify_token(token: str) -> str | None:
    """The admin, or None; an address that sent too many wrong tokens gets 429 until its window passes."""
    wait = wait_after_failures()
    if wait is not None:
        raise ApiError(
            429,
            "too_many_requests",
            "too many failed authentications from this address; try again later",
            headers={"Retry-After": str(wait)},
        )
    return "admin" if is_admin_token(token) else None


@admin_auth.error_processor
def auth_error(error):
    return (
        {"error": "unauthorized", "message": "missing or wrong admin token (Authorization: Bearer <ADMIN_TOKEN>)"},
        401,
        {"WWW-Authenticate": 'Bearer realm="lookalike"'},
    )
