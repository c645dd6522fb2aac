"""Vector index helpers for tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from backend.index import Hit, VectorIndex


def search_one(index: VectorIndex, vector: Sequence[float], **options: Any) -> list[Hit]:
    """The nearest points to one vector (the index answers batches)."""
    return index.search_batch([vector], **options)[0]
