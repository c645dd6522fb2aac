"""The vector index adapter: Qdrant Edge in-process by default, the Qdrant server when QDRANT_URL is set."""

from __future__ import annotations

import atexit
import threading

from backend.config import Settings
from backend.index.base import EMBEDDING_DIM, Hit, IndexPoint, IndexUnavailable, SearchFilter, VectorIndex

__all__ = ["EMBEDDING_DIM", "Hit", "IndexPoint", "IndexUnavailable", "SearchFilter", "VectorIndex", "open_index"]

_open: dict[tuple[str, str], VectorIndex] = {}
_lock = threading.Lock()


def open_index(settings: Settings) -> VectorIndex:
    """The process-wide index for these settings, opened once.

    An Edge shard can be opened by one process only, once: every app in the process shares it.
    """
    location = settings.qdrant_url or str(settings.qdrant_path)
    key = (location, settings.qdrant_collection)
    with _lock:
        index = _open.get(key)
        if index is None:
            index = _connect(settings)
            _open[key] = index
        return index


def _connect(settings: Settings) -> VectorIndex:
    if settings.qdrant_url is None:
        from backend.index.edge import EdgeIndex

        assert settings.qdrant_path is not None
        return EdgeIndex(settings.qdrant_path, settings.qdrant_collection, hnsw_ef=settings.hnsw_ef)
    from qdrant_client import QdrantClient

    from backend.index.server import ServerIndex

    if settings.qdrant_url == ":memory:":
        client = QdrantClient(location=":memory:")
    else:
        client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10)
    return ServerIndex(client, settings.qdrant_collection, hnsw_ef=settings.hnsw_ef)


def close_all() -> None:
    with _lock:
        for index in _open.values():
            index.close()
        _open.clear()


atexit.register(close_all)
