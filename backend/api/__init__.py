"""The JSON API under /api/v1: one blueprint per resource; routes parse, call one function, serialize."""

from __future__ import annotations

from backend.api import duplicates, events, images, imports, products, similar, system

BLUEPRINTS = (
    system.bp,
    system.metrics_bp,
    products.bp,
    images.bp,
    images.media_bp,
    similar.bp,
    imports.bp,
    duplicates.bp,
    events.bp,
)
