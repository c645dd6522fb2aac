"""Admin token check for every write: `Authorization: Bearer <ADMIN_TOKEN>`."""

from __future__ import annotations

import hmac

from apiflask import HTTPTokenAuth
from flask import current_app

admin_auth = HTTPTokenAuth(scheme="Bearer", description="the ADMIN_TOKEN setting")


@admin_auth.verify_token
def verify_token(token: str) -> str | None:
    expected: str = current_app.config["ADMIN_TOKEN"]
    if token and hmac.compare_digest(token.encode(), expected.encode()):
        return "admin"
    return None


@admin_auth.error_processor
def auth_error(error):  # type: ignore[no-untyped-def]
    return (
        {"error": "unauthorized", "message": "missing or wrong admin token (Authorization: Bearer <ADMIN_TOKEN>)"},
        401,
        {"WWW-Authenticate": 'Bearer realm="lookalike"'},
    )
