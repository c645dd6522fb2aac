"""The vector index adapter: Qdrant Edge in-process by default, the Qdrant server when QDRANT_URL is set.

Each model version (and each rebuild) has its own collection; the database says which is active.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import threading
import time

from backend.config import Settings
from backend.index.base import EMBEDDING_DIM, Hit, IndexBusy, IndexPoint, IndexUnavailable, SearchFilter, VectorIndex

__all__ = [
    "EMBEDDING_DIM",
    "RELEASE_GRACE_S",
    "Hit",
    "IndexBusy",
    "IndexPoint",
    "IndexUnavailable",
    "SearchFilter",
    "VectorIndex",
    "close_all",
    "close_index",
    "drop_collection",
    "list_collections",
    "open_index",
    "point_alias",
    "release_others",
]

log = logging.getLogger(__name__)
_open: dict[tuple[str, str], VectorIndex] = {}
# Edge shards a reindex replaced, still open for the grace; then closed for good in this process.
_retiring: dict[tuple[str, str], VectorIndex] = {}
_released: set[tuple[str, str]] = set()
_lock = threading.Lock()
# A collection replaced by a reindex stays readable this long after the switch, so that queries that
# read its name just before the switch finish on it: an Edge shard stays open, a server collection stays.
RELEASE_GRACE_S = 5.0


def _location(settings: Settings) -> str:
    return settings.qdrant_url or str(settings.qdrant_path)


def open_index(settings: Settings, name: str) -> VectorIndex:
    """The process-wide index of collection `name`, opened (created if new) once.

    An Edge shard can be opened by one process only, once: every app in the process shares it.
    """
    key = (_location(settings), name)
    with _lock:
        index = _open.get(key) or _retiring.get(key)  # retiring: a request that read the name before a switch
        if index is None:
            if key in _released:
                raise IndexUnavailable(f"collection {name} was replaced by a reindex; ask again")
            index = _connect(settings, name)
            _open[key] = index
        return index


def _connect(settings: Settings, name: str) -> VectorIndex:
    if settings.qdrant_url is None:
        from backend.index.edge import EdgeIndex

        assert settings.qdrant_path is not None
        return EdgeIndex(settings.qdrant_path, name, hnsw_ef=settings.hnsw_ef)
    from backend.index.server import ServerIndex

    return ServerIndex(server_client(settings), name, hnsw_ef=settings.hnsw_ef)


_clients: dict[str, object] = {}


def server_client(settings: Settings):  # type: ignore[no-untyped-def]
    """One qdrant-client per server for this process (`:memory:` is qdrant-client's in-process mode, for tests)."""
    from qdrant_client import QdrantClient

    assert settings.qdrant_url is not None
    client = _clients.get(settings.qdrant_url)
    if client is None:
        if settings.qdrant_url == ":memory:":
            client = QdrantClient(location=":memory:")
        else:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=10)
        _clients[settings.qdrant_url] = client
    return client


def close_index(settings: Settings, name: str) -> None:
    """Close this process's handle on a collection (Edge: frees the shard for another process)."""
    key = (_location(settings), name)
    with _lock:
        index = _open.pop(key, None) or _retiring.pop(key, None)
    if index is not None:
        index.close()


def release_others(settings: Settings, keep: str) -> None:
    """Close this process's Edge shards other than `keep` after a short grace (a reindex replaced them).

    On the server nothing is held: collections are dropped server-side.
    """
    if settings.qdrant_url is not None:
        return
    location = _location(settings)
    with _lock:
        if (location, keep) in _retiring or (location, keep) in _released:
            return  # `keep` is itself the replaced one, read by a late request: the newer shards stay
        stale = [key for key in _open if key[0] == location and key[1] != keep]
        for key in stale:
            _retiring[key] = _open.pop(key)
    for key in stale:
        log.info("closing the replaced collection %s in %.0f s", key[1], RELEASE_GRACE_S)
        timer = threading.Timer(RELEASE_GRACE_S, _retire, args=(key,))
        timer.daemon = True
        timer.start()


def _retire(key: tuple[str, str]) -> None:
    with _lock:
        index = _retiring.pop(key, None)
        _released.add(key)
    if index is not None:
        index.close()


def list_collections(settings: Settings) -> list[str]:
    """Collections that exist in the store (Edge: shard directories)."""
    if settings.qdrant_url is None:
        assert settings.qdrant_path is not None
        root = settings.qdrant_path
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    try:
        return sorted(c.name for c in server_client(settings).get_collections().collections)
    except Exception as exc:
        raise IndexUnavailable(f"Qdrant server unavailable: {exc}") from exc


def drop_collection(settings: Settings, name: str, *, wait_s: float = 0.0) -> None:
    """Delete a collection. An Edge shard still held by another process raises IndexBusy after `wait_s`."""
    close_index(settings, name)
    if settings.qdrant_url is not None:
        try:
            server_client(settings).delete_collection(name)
        except Exception as exc:
            raise IndexUnavailable(f"cannot drop collection {name}: {exc}") from exc
        return
    import qdrant_edge as qe

    assert settings.qdrant_path is not None
    path = settings.qdrant_path / name
    if not path.is_dir():
        return
    deadline = time.monotonic() + wait_s
    while True:
        try:
            shard = qe.EdgeShard.load(str(path))  # takes the shard's lock: nobody else has it open
        except Exception as exc:
            if "WouldBlock" not in str(exc):
                raise IndexUnavailable(f"cannot open {path} to drop it: {exc}") from exc
            if time.monotonic() >= deadline:
                raise IndexBusy(f"collection {name} is still open in another process") from exc
            time.sleep(0.5)
            continue
        shard.close()
        shutil.rmtree(path)
        return


def point_alias(settings: Settings, alias: str, name: str) -> None:
    """Point the server alias `alias` at collection `name` in one atomic request (Edge has no aliases)."""
    if settings.qdrant_url is None:
        return
    from qdrant_client import models

    client = server_client(settings)
    actions: list[object] = []
    try:
        if any(a.alias_name == alias for a in client.get_aliases().aliases):
            actions.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias)))
        actions.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=alias))
        )
        client.update_collection_aliases(change_aliases_operations=actions)  # type: ignore[arg-type]
    except Exception as exc:
        raise IndexUnavailable(f"cannot point alias {alias} at {name}: {exc}") from exc


def close_all() -> None:
    with _lock:
        for index in [*_open.values(), *_retiring.values()]:
            index.close()
        _open.clear()
        _retiring.clear()
        for client in _clients.values():
            client.close()  # type: ignore[attr-defined]
        _clients.clear()


atexit.register(close_all)
