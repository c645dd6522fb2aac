"""The admin token, checked the same way by the API (a bearer token) and the pages (a login form).

A client address that sends too many wrong tokens waits, whichever door it knocks on."""

from __future__ import annotations

import hashlib
import hmac
import math
import time

from flask import current_app
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse

from backend.config import current_settings
from backend.core.extensions import limiter

SCOPE = "auth-failures"


def _window() -> tuple[RateLimitItem, str]:
    return parse(current_settings().rate_limit_auth_failures), get_remote_address()


def wait_after_failures() -> int | None:
    """Seconds this address must wait before its next try, or None when it may try now."""
    if not current_settings().rate_limits_enabled:
        return None
    limit, address = _window()
    if limiter.limiter.test(limit, SCOPE, address):
        return None
    reset = limiter.limiter.get_window_stats(limit, SCOPE, address).reset_time
    return max(1, math.ceil(reset - time.time()))


def is_admin_token(token: str | None) -> bool:
    """Compare in constant time; a wrong token counts against the sender's address."""
    expected: str = current_app.config["ADMIN_TOKEN"]
    if token and hmac.compare_digest(token.encode(), expected.encode()):
        return True
    if current_settings().rate_limits_enabled:
        limit, address = _window()
        limiter.limiter.hit(limit, SCOPE, address)
    return False


def token_fingerprint() -> str:
    """A keyed digest of the current admin token: a session made with an older token stops working."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, current_app.config["ADMIN_TOKEN"].encode(), hashlib.sha256).hexdigest()[:32]


def search_rate_limit() -> str:
    """RATE_LIMIT_SEARCH, read per request: the photo search's limit, shared by the API and the page."""
    return current_settings().rate_limit_search
