"""Duplicate photos across products: the same file or near-copies, grouped, for an admin to resolve."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from backend.api.auth import admin_auth
from backend.api.schemas import DuplicatePageOut, PageQuery
from backend.core.extensions import db
from backend.db.duplicates import duplicate_groups

bp = APIBlueprint("duplicates", __name__, url_prefix="/api/v1", tag="Duplicates")


@bp.get("/duplicates")
@bp.doc(operation_id="listDuplicates")
@bp.auth_required(admin_auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(DuplicatePageOut)
def duplicates(query: dict[str, Any]) -> Any:
    """Groups of photos of different products that are the same file or near-copies, each with its pairs."""
    groups = duplicate_groups(db.session)
    start = (query["page"] - 1) * query["per_page"]
    items = groups[start : start + query["per_page"]]
    return {"items": items, "total": len(groups), "page": query["page"], "per_page": query["per_page"]}
