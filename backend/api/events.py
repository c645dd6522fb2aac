"""Shopper events from the shop's pages (public, rate-limited, small, `sendBeacon`-friendly), and the admin's
analytics over them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from apiflask import APIBlueprint, Schema, fields
from flask import request

from backend.api.auth import admin_auth
from backend.config import current_settings
from backend.core.extensions import db, limiter
from backend.domain.events import MAX_BODY_BYTES
from backend.errors import InvalidInput
from backend.services import events

bp = APIBlueprint("events", __name__, url_prefix="/api/v1", tag="Shopper events")


def events_rate_limit() -> str:
    return current_settings().rate_limit_events


def small_body() -> None:
    """An events body is small: a larger one is refused (413) before it is read."""
    if request.endpoint == "events.record":
        request.max_content_length = MAX_BODY_BYTES


bp.before_request(small_body)


class RecordedOut(Schema):
    accepted = fields.Integer(metadata={"description": "how many events the body held, all of them kept"})


class AnalyticsQuery(Schema):
    start = fields.Date(
        data_key="from", load_default=None, metadata={"description": "first UTC day (default: 29 days ago)"}
    )
    end = fields.Date(data_key="to", load_default=None, metadata={"description": "last UTC day (default: today)"})


@bp.post("/events")
@bp.output(RecordedOut, status_code=202)
@bp.doc(
    operation_id="recordEvents",
    responses={
        400: "a bad event (the field is named: `events[2].product`); nothing of the body is kept",
        413: "a body over 16 KB",
        429: "too many events from this address (RATE_LIMIT_EVENTS)",
    },
)
@limiter.limit(events_rate_limit)
def record() -> Any:
    """Record shopper events: one, or {"events": [...]} of at most 50, as JSON (any content type, so that
    `navigator.sendBeacon` needs no preflight). Each: `type` (impression, click, add_to_cart, purchase), `query`
    (the product whose look-alikes were shown), `product` (the one acted on) or, for an impression, `shown` (the
    look-alikes in order), `position` (from 1), `visitor` (a random id), `model_version`, `arm`, `at` (ISO 8601).
    """
    try:
        body = json.loads(request.get_data(cache=False, as_text=True) or "null")
    except (ValueError, RecursionError):
        raise InvalidInput("body", "not JSON") from None
    return {"accepted": events.record_events(session=db.session, body=body)}, 202


@bp.get("/analytics")
@bp.auth_required(admin_auth)
@bp.input(AnalyticsQuery, location="query", arg_name="query")
@bp.doc(operation_id="getAnalytics", responses={400: "`to` before `from`, or more than 366 days"})
def analytics(query: dict[str, Any]) -> Any:
    """Impressions, clicks, CTR (and by position), add-to-cart and purchase rates per impression, by model version
    and experiment arm over the period, and per day."""
    today = datetime.now(UTC).date()
    end = query["end"] or today
    start = query["start"] or end - timedelta(days=29)
    return events.analytics(session=db.session, start=start, end=end)
