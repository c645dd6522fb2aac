"""The pages: server-rendered HTML from the same app, calling the same use cases as the API (never the API)."""

from __future__ import annotations

from backend.web import admin, assets, shop

BLUEPRINTS = (assets.bp, shop.bp, admin.bp)
