"""Admin token check for every write: `Authorization: Bearer <ADMIN_TOKEN>`."""

from __future__ import annotations

import hmac
import math
import time

from apiflask import HTTPTokenAuth
from flask import current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse

from backend.api.errors import ApiError
from backend.config import current_settings
from backend.extensions import limiter

admin_auth = HTTPTokenAuth(scheme="Bearer", description="the ADMIN_TOKEN setting")


def _failures() -> tuple[RateLimitItem, str]:
    return parse(current_settings().rate_limit_auth_failures), get_remote_address()


@admin_auth.verify_token
def verify_token(token: str) -> str | None:
    """The admin, or None; an address that sent too many wrong tokens gets 429 until its window passes."""
    limit, address = _failures()
    enabled = current_settings().rate_limits_enabled
    if enabled and not limiter.limiter.test(limit, "auth-failures", address):
        reset = limiter.limiter.get_window_stats(limit, "auth-failures", address).reset_time
        raise ApiError(
            429,
            "too_many_requests",
            "too many failed authentications from this address; try again later",
            headers={"Retry-After": str(max(1, math.ceil(reset - time.time())))},
        )
    expected: str = current_app.config["ADMIN_TOKEN"]
    if token and hmac.compare_digest(token.encode(), expected.encode()):
        return "admin"
    if enabled:
        limiter.limiter.hit(limit, "auth-failures", address)
    return None


@admin_auth.error_processor
def auth_error(error):  # type: ignore[no-untyped-def]
    return (
        {"error": "unauthorized", "message": "missing or wrong admin token (Authorization: Bearer <ADMIN_TOKEN>)"},
        401,
        {"WWW-Authenticate": 'Bearer realm="lookalike"'},
    )
