"""How a collection keeps its vectors (VECTOR_QUANTIZATION, VECTOR_MEMORY, HNSW_M, HNSW_EF_CONSTRUCT) and how the
server spreads it (QDRANT_SHARDS, QDRANT_REPLICAS, QDRANT_WRITE_CONSISTENCY), on both backends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient

from backend.config import Settings
from backend.index import IndexPoint, VectorIndex, storage_of
from backend.index import base as index_base
from backend.index.base import COMPACT_FROM_PHOTOS, Storage
from backend.index.edge import EdgeIndex
from backend.index.server import ServerIndex
from tests.utils.vectors import search_one

DIM = 1000


class RecordingClient(QdrantClient):
    """qdrant-client's in-process mode, which takes and ignores shards and replicas: what a cluster would be
    asked for is recorded (no cluster runs here)."""

    created: dict[str, Any]

    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created = kwargs
        return super().create_collection(collection_name, **kwargs)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (30, DIM)).astype(np.float32)
    return centres[rng.integers(0, 30, n)] + rng.normal(0, 1, (n, DIM)).astype(np.float32)


def open_index(backend: str, tmp_path: Path, storage: Storage) -> VectorIndex:
    if backend == "edge":
        return EdgeIndex(tmp_path, "stored", storage=storage)
    return ServerIndex(QdrantClient(location=":memory:"), "stored", storage=storage)


@pytest.mark.parametrize("backend", ["edge", "server"])
@pytest.mark.parametrize(
    ("quantization", "memory"), [("none", "ram"), ("int8", "disk"), ("int8", "ram"), ("none", "disk")]
)
def test_quantized_or_mapped_vectors_answer_exact_distances_of_the_nearest(
    backend: str, quantization: str, memory: str, tmp_path: Path
) -> None:
    """Whatever the storage, the hits' distances are the originals' (quantized candidates rescored) and the top
    10 are nearly all the exact top 10."""
    vectors = clustered(1500)
    index = open_index(backend, tmp_path, Storage(quantization=quantization, memory=memory, hnsw_m=8))
    try:
        index.upsert([IndexPoint(i + 1, v, {"product_id": i + 1}) for i, v in enumerate(vectors)])
        index.optimize()
        rng = np.random.default_rng(1)
        recalls = []
        for j in rng.choice(len(vectors), 20, replace=False):
            query = vectors[j] + rng.normal(0, 0.5, DIM).astype(np.float32)
            exact = np.sqrt(((vectors - query) ** 2).sum(axis=1))
            hits = search_one(index, query.tolist(), limit=10)
            assert [h.distance for h in hits] == pytest.approx(exact[[h.id - 1 for h in hits]].tolist(), rel=1e-3)
            recalls.append(len({h.id - 1 for h in hits} & set(np.argsort(exact)[:10].tolist())) / 10)
        assert np.mean(recalls) >= 0.9
    finally:
        index.close()


def test_edge_shard_is_created_with_the_storage_asked_for(tmp_path: Path) -> None:
    EdgeIndex(tmp_path, "compact", storage=Storage(quantization="int8", memory="disk", hnsw_m=8)).close()
    vectors = json.loads((tmp_path / "compact" / "edge_config.json").read_text())["vectors"]
    assert vectors[""]["memory"] == "cold"  # the originals mapped from disk
    assert vectors[""]["quantization_config"]["scalar"]["type"] == "int8"
    assert vectors[""]["hnsw_config"]["m"] == 8
    assert {vectors[name]["memory"] for name in ("look", "kind", "copy")} == {"cold"}
    assert vectors["kind"]["quantization_config"]["scalar"]["memory"] == "cold"  # its int8 copies mapped too
    EdgeIndex(tmp_path, "plain").close()
    plain = json.loads((tmp_path / "plain" / "edge_config.json").read_text())["vectors"]
    assert plain[""].get("memory") in (None, "cached") and plain[""].get("quantization_config") is None
    assert plain["kind"]["quantization_config"]["scalar"]["type"] == "int8"  # the kind vector is int8 always


def test_server_collection_is_created_with_shards_replicas_and_quantization() -> None:
    client = RecordingClient(location=":memory:")
    storage = Storage(quantization="int8", memory="disk", shards=3, replicas=2, write_consistency=2)
    ServerIndex(client, "spread", storage=storage).close()
    asked = client.created
    assert (asked["shard_number"], asked["replication_factor"], asked["write_consistency_factor"]) == (3, 2, 2)
    vectors = client.get_collection("spread").config.params.vectors
    assert isinstance(vectors, dict)
    assert vectors[""].on_disk and vectors[""].quantization_config is not None
    assert vectors["kind"].quantization_config is not None and not vectors["kind"].quantization_config.scalar.always_ram
    assert vectors["look"].on_disk and vectors["kind"].on_disk


def test_auto_storage_goes_compact_for_a_large_catalog() -> None:
    auto = Storage()
    assert (auto.resolved(None).quantization, auto.resolved(None).memory) == ("none", "ram")
    assert (auto.resolved(COMPACT_FROM_PHOTOS - 1).quantization, auto.resolved(COMPACT_FROM_PHOTOS - 1).memory) == (
        "none",
        "ram",
    )
    big = auto.resolved(COMPACT_FROM_PHOTOS)
    assert (big.quantization, big.memory) == ("int8", "disk")
    chosen = Storage(quantization="none", memory="disk").resolved(10 * COMPACT_FROM_PHOTOS)
    assert (chosen.quantization, chosen.memory) == ("none", "disk")  # what a setting names is kept


def test_settings_name_the_storage_and_refuse_an_impossible_write_consistency(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        var_dir=tmp_path,
        vector_quantization="int8",
        vector_memory="disk",
        hnsw_m=32,
        qdrant_shards=6,
        qdrant_replicas=2,
        qdrant_write_consistency=2,
    )
    storage = storage_of(settings)
    assert (storage.quantization, storage.memory, storage.hnsw_m, storage.shards, storage.replicas) == (
        "int8",
        "disk",
        32,
        6,
        2,
    )
    with pytest.raises(ValidationError, match="QDRANT_WRITE_CONSISTENCY"):
        Settings(_env_file=None, var_dir=tmp_path, qdrant_replicas=1, qdrant_write_consistency=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, var_dir=tmp_path, vector_quantization="binary")  # type: ignore[call-arg]


def test_a_build_for_a_large_catalog_gets_compact_storage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The store resolves `auto` with the photo count the reindex passes (the threshold lowered here)."""
    from backend.index.edge import EdgeStore

    monkeypatch.setattr(index_base, "COMPACT_FROM_PHOTOS", 3)
    store = EdgeStore(tmp_path)
    store.open_for_build("small", photos=2)
    store.open_for_build("large", photos=3)
    store.close()
    small = json.loads((tmp_path / "small" / "edge_config.json").read_text())["vectors"][""]
    large = json.loads((tmp_path / "large" / "edge_config.json").read_text())["vectors"][""]
    assert small.get("quantization_config") is None and large["quantization_config"]["scalar"]["type"] == "int8"
    assert large["memory"] == "cold"
