"""Every asset the pages and /docs use, served by the app itself: nothing comes from another host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, abort, send_from_directory, url_for
from swagger_ui_bundle import swagger_ui_path

from backend.web.pages import is_admin

bp = Blueprint("assets", __name__, static_folder="static", static_url_path="/static")
bp.enable_openapi = False  # type: ignore[attr-defined]  # not API operations (APIFlask reads this)

# The files of Swagger UI that /docs loads (APIFlask's SWAGGER_UI_* settings point here).
SWAGGER_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"})
SWAGGER_SETTINGS = {
    "SWAGGER_UI_CSS": "/docs/assets/swagger-ui.css",
    "SWAGGER_UI_BUNDLE_JS": "/docs/assets/swagger-ui-bundle.js",
    "SWAGGER_UI_STANDALONE_PRESET_JS": "/docs/assets/swagger-ui-standalone-preset.js",
    "DOCS_FAVICON": "/static/favicon.svg",
    "SWAGGER_UI_CONFIG": {"validatorUrl": None},  # no badge from validator.swagger.io
    # The Swagger UI a package ships (4.15) reads OpenAPI 3.0; the document says nothing 3.1 would add.
    "OPENAPI_VERSION": "3.0.3",
}


@bp.get("/docs/assets/<name>")
def swagger(name: str) -> Any:
    if name not in SWAGGER_FILES:
        abort(404)
    return send_from_directory(str(swagger_ui_path), name, max_age=86400)


WIDGET = Path(__file__).resolve().parent / "widget"


@bp.get("/widget.js")
def widget() -> Any:
    """The look-alikes widget for a shop's own pages: one small script, revalidated by its ETag."""
    response = send_from_directory(WIDGET, "widget.js", mimetype="text/javascript", max_age=300)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.app_template_global()
def thumb_url(stored_name: str) -> str:
    return url_for("media.thumbnail", name=stored_name)


@bp.app_template_global()
def photo_url(stored_name: str) -> str:
    return url_for("media.serve", name=stored_name)


@bp.app_template_global()
def signed_in() -> bool:
    return is_admin()


@bp.app_template_filter()
def money(value: Any) -> str:
    return "" if value is None else f"{float(value):,.2f}"
