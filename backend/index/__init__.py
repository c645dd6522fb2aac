"""The vector index adapter: Qdrant Edge in-process by default, the Qdrant server when QDRANT_URL is set.

Each model version (and each rebuild) has its own collection; the database says which is active.
`store_for(settings)` is the one place that chooses the backend: everything else speaks to a
VectorStore (open, list, drop, alias, release) and the VectorIndex of one collection.
"""

from __future__ import annotations

import atexit
import threading

from backend.config import Settings
from backend.index.base import (
    Hit,
    IndexBusy,
    IndexPoint,
    IndexUnavailable,
    SearchFilter,
    Storage,
    VectorIndex,
    VectorStore,
)
from backend.index.edge import EdgeStore
from ml.versions import EMBEDDING_DIM

__all__ = [
    "EMBEDDING_DIM",
    "Hit",
    "IndexBusy",
    "IndexPoint",
    "IndexUnavailable",
    "SearchFilter",
    "Storage",
    "VectorIndex",
    "VectorStore",
    "close_all",
    "store_for",
]

_stores: dict[str, VectorStore] = {}
_lock = threading.Lock()


def store_for(settings: Settings) -> VectorStore:
    """The process-wide store the settings name: one per Edge folder or server."""
    location = settings.qdrant_url or str(settings.qdrant_path)
    with _lock:
        store = _stores.get(location)
        if store is None:
            storage = storage_of(settings)
            if settings.qdrant_url is None:
                store = EdgeStore(
                    settings.qdrant_path,
                    hnsw_ef=settings.hnsw_ef,
                    attribute_keys=settings.attribute_keys,
                    storage=storage,
                )
            else:
                # Here: qdrant-client takes seconds to import, and the embedded default never needs it.
                from backend.index.server import ServerStore

                store = ServerStore(
                    settings.qdrant_url,
                    api_key=settings.qdrant_api_key,
                    hnsw_ef=settings.hnsw_ef,
                    attribute_keys=settings.attribute_keys,
                    storage=storage,
                )
            _stores[location] = store
        return store


def storage_of(settings: Settings) -> Storage:
    """How new collections keep their vectors, from the settings (`auto` decided per collection)."""
    return Storage(
        quantization=settings.vector_quantization.value,
        memory=settings.vector_memory.value,
        oversampling=settings.quantization_oversampling,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construct=settings.hnsw_ef_construct,
        shards=settings.qdrant_shards,
        replicas=settings.qdrant_replicas,
        write_consistency=settings.qdrant_write_consistency,
    )


def close_all() -> None:
    """Close every collection and client of this process (at exit, and between tests)."""
    with _lock:
        stores = list(_stores.values())
        _stores.clear()
    for store in stores:
        store.close()


atexit.register(close_all)
