"""One JSON error shape for the whole API: {"error": code, "message": text}, domain errors with their own status."""

from __future__ import annotations

from typing import Any

from apiflask import APIFlask, HTTPError
from flask import request

from backend.domain.products import ATTRIBUTES_MAX_DEPTH
from backend.errors import (
    InvalidInput,
    LookalikeError,
)
from backend.index import IndexUnavailable

# Codes for statuses raised by Flask, Werkzeug or APIFlask rather than by our own code.
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_field",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(HTTPError):
    """An HTTP error with a machine-readable code; extra keyword fields are added to the body."""

    def __init__(
        self, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(status_code, message, extra_data={"error": code, **extra}, headers=headers)


def _field_message(detail: dict[str, Any]) -> tuple[str, str]:
    """Flatten webargs' {location: {field: [messages]}} into the first field and a readable line."""
    parts: list[str] = []
    first = ""
    for fields in detail.values():
        if not isinstance(fields, dict):
            continue
        for field, messages in fields.items():
            first = first or str(field)
            if isinstance(messages, dict):  # list items: {index: [messages]}
                messages = [m for ms in messages.values() for m in (ms if isinstance(ms, list) else [ms])]
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            parts.append(f"{field}: {text}")
    return first, "; ".join(parts)


# The deepest JSON body any route takes: an object holding attributes of ATTRIBUTES_MAX_DEPTH levels.
JSON_BODY_MAX_DEPTH = 1 + ATTRIBUTES_MAX_DEPTH


def as_http(error: LookalikeError) -> ApiError:
    return ApiError(error.status, error.code, error.message, **error.extra)


def too_deep(text: str, limit: int) -> str | None:
    """The top-level key under which a JSON text nests deeper than `limit` ("" at the top), else None.

    Python's JSON parser recurses: a body nested a few thousand levels deep raises RecursionError (a 500)
    before any schema sees it. This scan does not recurse, and runs only when the text has enough brackets."""
    if text.count("[") + text.count("{") <= limit:
        return None
    depth, in_string, escaped, start, last_string, key = 0, False, False, 0, "", ""
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string, last_string = False, text[start:i]
        elif char == '"':
            in_string, start = True, i + 1
        elif char == ":" and depth == 1:
            key = last_string
        elif char in "[{":
            depth += 1
            if depth > limit:
                return key
        elif char in "]}":
            depth -= 1
    return None


def refuse_deep_json() -> None:
    """Before the body is parsed: a JSON body nested deeper than any field allows is a 400 naming the field."""
    if not request.is_json:
        return
    text = request.get_data(cache=True, as_text=True)
    field = too_deep(text, JSON_BODY_MAX_DEPTH)
    if field is not None:
        raise InvalidInput(field or "body", f"nested deeper than {JSON_BODY_MAX_DEPTH - 1} levels")


def register_error_processor(app: APIFlask) -> None:
    app.before_request(refuse_deep_json)

    @app.errorhandler(LookalikeError)
    def domain_error(error: LookalikeError) -> Any:
        return app.error_callback(as_http(error))

    @app.errorhandler(IndexUnavailable)
    def index_unavailable(error: IndexUnavailable) -> tuple[dict[str, Any], int]:
        app.logger.warning("vector index unavailable: %s", error)
        return {"error": "index_unavailable", "message": "the vector index is unavailable; try again shortly"}, 503

    @app.error_processor
    def to_json(error: HTTPError) -> tuple[dict[str, Any], int, Any]:
        body: dict[str, Any] = {"error": STATUS_CODES.get(error.status_code, "error"), "message": error.message}
        if error.status_code == app.config["VALIDATION_ERROR_STATUS_CODE"] and isinstance(error.detail, dict):
            field, message = _field_message(error.detail)
            if field:
                body.update(error="invalid_field", field=field, message=message)
        body.update(error.extra_data)
        return body, error.status_code, error.headers
