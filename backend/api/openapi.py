"""The OpenAPI document: one name per schema."""

from __future__ import annotations

import json
import re
from typing import Any

NUMBERED = re.compile(r"^(?P<base>.+?)(?P<n>\d+)$")


def merge_duplicate_schemas(spec: dict[Any, Any] | str) -> dict[Any, Any] | str:
    """APIFlask registers a response schema again under `Name1` when the plugin already added `Name` as a
    nested schema: the two are the same; refer to `Name` everywhere."""
    if isinstance(spec, str):  # SPEC_FORMAT yaml: nothing to merge by hand
        return spec
    schemas = spec.get("components", {}).get("schemas", {})
    renames = {}
    for name, body in list(schemas.items()):
        match = NUMBERED.match(name)
        if match and schemas.get(match["base"]) == body:
            renames[f"#/components/schemas/{name}"] = f"#/components/schemas/{match['base']}"
            del schemas[name]
    if not renames:
        return spec
    text = json.dumps(spec)
    for old, new in renames.items():
        text = text.replace(f'"{old}"', f'"{new}"')
    merged: dict[str, Any] = json.loads(text)
    return merged
