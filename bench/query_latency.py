"""Similar-items latency at catalog scale, over HTTP on 127.0.0.1, against the index alone and exact search.

    uv run python bench/query_latency.py --photos 300000

Loads N synthetic clustered photo vectors (products of 1-5 photos, 10 categories, stored in
the database as indexed, so the API serves them as real products) into the embedded store,
builds the HNSW graph, then in one run measures:
  - the index query alone (one Qdrant Edge search, top 10), with and without a category filter;
  - recall@10 of that search against an exact NumPy brute force over the same vectors;
  - GET /api/v1/products/<id>/similar?limit=10 over HTTP (keep-alive), with and without a
    category filter: p50, p95, p99 and requests/s, and product-level recall against exact grouping;
    each at look=0 (the 1000-d vector alone, as before the look existed) and at the default look
    (LOOK_DEFAULT: the index's prefetch, look rescoring and formula), the two interleaved in one run.
  - the framework's floor: a 404 from the app over the same kind of connection (`http.floor`);
  - the default answer, then the same requests at look=0, over --connections (8) connections at once: requests/s
    and latency (`http.concurrent`, `http.concurrent_look0` in --json).
Every point has synthetic look and kind vectors too (clustered unit vectors), as the service stores them.

    uv run python bench/query_latency.py --photos 100000 --production --against d10e91b

also serves the same catalog with the code at a git ref (a worktree with its own environment, its own
catalog built by its own code) and interleaves its default answer with this checkout's, request by
request: the ratio of the two p50s comes from one run.
Targets on 2 cores: p50 <= 10 ms, p99 <= 30 ms over HTTP; recall@10 >= 0.95.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from flask_migrate import upgrade
from sqlalchemy import insert
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.app import create_app  # noqa: E402
from backend.config import ProductQuery, Settings  # noqa: E402
from backend.core.extensions import db  # noqa: E402
from backend.db.models import Product, ProductImage  # noqa: E402
from backend.index import IndexPoint, SearchFilter, VectorIndex, close_all, storage_of, store_for  # noqa: E402
from backend.index.base import KIND_DIM, LOOK_DIM  # noqa: E402
from backend.serving.active import active_collection, active_index  # noqa: E402
from ml.versions import untrained_version  # noqa: E402
from scripts import harness  # noqa: E402

CATEGORIES = ["dress", "hat", "longsleeve", "outwear", "pants", "shirt", "shoes", "shorts", "skirt", "t-shirt"]
DIM = 1000


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=300_000)
    parser.add_argument("--clusters", type=int, default=1000, help="groups of look-alike products")
    parser.add_argument("--queries", type=int, default=500, help="HTTP requests per variant")
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--connections", type=int, default=8, help="client connections of the concurrent run")
    parser.add_argument(
        "--concurrent-requests", type=int, default=2000, help="requests of the concurrent run (it stops by 120 s)"
    )
    parser.add_argument("--var-dir", type=Path, help="keep the catalog here (default: a temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse a catalog already built in --var-dir")
    parser.add_argument(
        "--production", action="store_true", help="serve with waitress (serve --production) instead of the dev server"
    )
    parser.add_argument("--quantization", default="auto", help="VECTOR_QUANTIZATION of the catalog's collection")
    parser.add_argument("--memory", default="auto", help="VECTOR_MEMORY of the catalog's collection")
    parser.add_argument("--hnsw-m", type=int, default=16, help="HNSW_M of the catalog's collection")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="also serve the same catalog with the code at this git ref (a worktree with its own environment)"
        " and interleave its default answer with this checkout's, in the same run",
    )
    return parser


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.array(samples_s) * 1000
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
    }


def synthesize(n_photos: int, clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Photo vectors, the product of each photo, and each product's category index."""
    rng = np.random.default_rng(seed)
    sizes, total = [], 0
    while total < n_photos:  # a running total: summing the list each time is quadratic (hours at 1M photos)
        sizes.append(int(rng.integers(1, 6)))
        total += sizes[-1]
    sizes[-1] -= total - n_photos
    sizes = [s for s in sizes if s > 0]
    n_products = len(sizes)
    centres = rng.normal(0, 1, (clusters, DIM)).astype(np.float32) * 4
    cluster_of = rng.integers(0, clusters, n_products)
    categories = (cluster_of % len(CATEGORIES)).astype(np.int64)
    owner = np.repeat(np.arange(n_products), sizes)
    vectors = np.empty((n_photos, DIM), dtype=np.float32)
    for start in range(0, n_photos, 20_000):
        rows = owner[start : start + 20_000]
        noise = rng.normal(0, 1, (len(rows), DIM)).astype(np.float32)
        vectors[start : start + len(rows)] = centres[cluster_of[rows]] + noise
    return vectors, owner, categories


def build_catalog(settings: Settings, n_photos: int, clusters: int, seed: int) -> dict[str, float]:
    vectors, owner, categories = synthesize(n_photos, clusters, seed)
    version = untrained_version(settings.untrained_seed, settings.embed_image_size)
    app = create_app(settings)
    timings = {}
    with app.app_context():
        upgrade()
        tick = time.perf_counter()
        rng = np.random.default_rng(seed + 1)
        n_products = int(owner.max()) + 1
        prices = np.round(rng.uniform(5, 300, n_products), 2)
        for start in range(0, n_products, 50_000):
            db.session.execute(
                insert(Product),
                [
                    {
                        "id": i + 1,
                        "sku": f"SKU-{i + 1:07d}",
                        "title": f"Product {i + 1}",
                        "category": CATEGORIES[categories[i]],
                        "brand": f"brand-{i % 40}",
                        "price": float(prices[i]),
                        "attributes": {},
                    }
                    for i in range(start, min(start + 50_000, n_products))
                ],
            )
        for start in range(0, n_photos, 50_000):
            db.session.execute(
                insert(ProductImage),
                [
                    {
                        "id": j + 1,
                        "product_id": int(owner[j]) + 1,
                        "stored_name": f"{j:032x}"[:2] + f"/{j:032x}.jpg",
                        "sha256": f"{j:064x}",
                        "width": 256,
                        "height": 256,
                        "content_type": "image/jpeg",
                        "size_bytes": 1,
                        "status": "indexed",
                        "attempts": 1,
                        "model_version": version,
                    }
                    for j in range(start, min(start + 50_000, n_photos))
                ],
            )
        db.session.commit()
        timings["database_s"] = time.perf_counter() - tick

        # Created for the catalog it will hold: the storage VECTOR_QUANTIZATION and VECTOR_MEMORY choose for it.
        active = active_collection(session=db.session, settings=settings)  # the row only: the shard opened here
        index = store_for(settings).open(active.name, photos=n_photos)
        look_rng = np.random.default_rng(seed + 2)
        look_centres = look_rng.normal(size=(64, LOOK_DIM)).astype(np.float32)
        # Kind vectors follow the 1000-d clusters (a fixed random projection), as a model's two vectors do.
        projection = look_rng.normal(size=(DIM, KIND_DIM)).astype(np.float32)
        tick = time.perf_counter()
        for start in tqdm(range(0, n_photos, 2000), desc="upsert", unit="batch"):
            stop = min(start + 2000, n_photos)
            looks = look_centres[look_rng.integers(0, 64, stop - start)]
            looks = looks + look_rng.normal(scale=0.5, size=looks.shape).astype(np.float32)
            looks /= np.linalg.norm(looks, axis=1, keepdims=True)
            kinds = vectors[start:stop] @ projection
            kinds /= np.linalg.norm(kinds, axis=1, keepdims=True)
            index.upsert(
                [
                    IndexPoint(
                        j + 1,
                        vectors[j],
                        {
                            "product_id": int(owner[j]) + 1,
                            "image_id": j + 1,
                            "category": CATEGORIES[categories[owner[j]]],
                            "brand": f"brand-{owner[j] % 40}",
                            "price": float(prices[owner[j]]),
                            "model_version": version,
                        },
                        look=looks[j - start],
                        kind=kinds[j - start],
                    )
                    for j in range(start, stop)
                ]
            )
        timings["upsert_s"] = time.perf_counter() - tick
        tick = time.perf_counter()
        index.optimize()
        timings["hnsw_build_s"] = time.perf_counter() - tick
    close_all()
    np.save(Path(settings.var_dir) / "bench-vectors.npy", vectors)
    np.save(Path(settings.var_dir) / "bench-owner.npy", owner)
    np.save(Path(settings.var_dir) / "bench-categories.npy", categories)
    return timings


def exact_top(
    vectors: np.ndarray, sq_norms: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None
) -> np.ndarray:
    distances = sq_norms - 2 * vectors @ query
    if mask is not None:
        distances = np.where(mask, distances, np.inf)
    top = np.argpartition(distances, k)[:k]
    return top[np.argsort(distances[top])]


def exact_products(
    vectors: np.ndarray,
    sq_norms: np.ndarray,
    owner: np.ndarray,
    queries: np.ndarray,
    exclude: int,
    k: int,
    mask: np.ndarray | None,
) -> list[int]:
    """Exact grouping: a product's distance is its closest photo to any query photo."""
    best = np.full(int(owner.max()) + 1, np.inf, dtype=np.float64)
    for q in queries:
        d = sq_norms - 2 * vectors @ q + float(q @ q)  # true squared distances: comparable across queries
        if mask is not None:
            d = np.where(mask, d, np.inf)
        np.minimum.at(best, owner, d)
    best[exclude] = np.inf
    top = np.argpartition(best, k)[:k]
    return [int(p) + 1 for p in top[np.argsort(best[top])]]


def live_index(settings: Settings) -> VectorIndex:
    """The active collection of the catalog (the database names it)."""
    with create_app(settings).app_context():
        return active_index(session=db.session, settings=settings)[1]


def index_alone(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    vectors = np.load(Path(settings.var_dir) / "bench-vectors.npy", mmap_mode="r")
    categories = np.load(Path(settings.var_dir) / "bench-categories.npy")
    owner = np.load(Path(settings.var_dir) / "bench-owner.npy")
    vectors = np.ascontiguousarray(vectors)
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    index = live_index(settings)
    rng = np.random.default_rng(args.seed + 2)
    picks = rng.choice(len(vectors), args.recall_queries, replace=False)
    out: dict[str, Any] = {"points": index.count()}
    for j in picks:  # warm-up: a reopened shard pages its files in on first touch
        index.search_batch([vectors[j]], limit=10)
    for label, with_category in (("no filter", False), ("category filter", True)):
        wheres = [SearchFilter(categories=(CATEGORIES[categories[owner[j]]],) if with_category else ()) for j in picks]
        latencies, found = [], []
        for j, where in zip(picks, wheres, strict=True):  # timed alone: no NumPy scan between the queries
            tick = time.perf_counter()
            hits = index.search_batch([vectors[j]], limit=10, where=where)[0]
            latencies.append(time.perf_counter() - tick)
            found.append({h.id - 1 for h in hits})
        exact_latencies, recalls = [], []
        for j, ids in zip(picks, found, strict=True):
            mask = (categories[owner] == categories[owner[j]]) if with_category else None
            tick = time.perf_counter()
            exact = exact_top(vectors, sq_norms, vectors[j], 10, mask)
            exact_latencies.append(time.perf_counter() - tick)
            recalls.append(len(ids & set(exact.tolist())) / 10)
        out[label] = {
            "index": percentiles(latencies),
            "numpy_exact": percentiles(exact_latencies),
            "recall_at_10": float(np.mean(recalls)),
        }
    close_all()
    return out


def _get(port: int, path: str) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", path)
    return connection.getresponse().read()


def resident_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process and its children (MB): all of it, its heap (anonymous) and mapped files."""
    pids, total = [pid], {"rss_mb": 0.0, "rss_anon_mb": 0.0, "rss_file_mb": 0.0}
    while pids:
        each = pids.pop()
        try:
            status = Path(f"/proc/{each}/status").read_text()
            for task in Path(f"/proc/{each}/task").iterdir():
                pids += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        for key, name in (("rss_mb", "VmRSS"), ("rss_anon_mb", "RssAnon"), ("rss_file_mb", "RssFile")):
            total[key] += int(fields.get(name, "0 kB").split()[0]) / 1024
    return total


@contextmanager
def serving(var_dir: Path, lookalike: Path, production: bool, cwd: Path | None = None) -> Iterator[harness.Server]:
    """`lookalike serve` on a free port over the catalog in `var_dir`, once it answers and its shard is warm."""
    env = {**os.environ, "VAR_DIR": str(var_dir), "ADMIN_TOKEN": "b" * 24}
    env.pop("VIRTUAL_ENV", None)
    args = ["--production"] if production else []
    log_path = var_dir / "serve.log"
    with harness.serving(env, cwd=cwd or ROOT, log_path=log_path, args=args, lookalike=str(lookalike)) as server:
        while not json.loads(_get(server.port, "/api/v1/stats"))["index"].get("warm", True):  # reads its shard once
            time.sleep(0.5)
        yield server


def over_http(settings: Settings, args: argparse.Namespace, baseline: Path | None = None) -> dict[str, Any]:
    """Each variant over HTTP, interleaved request by request: look=0 and the default look on this checkout,
    and with `baseline` (a checkout of --against with its own catalog) its default too."""
    vectors = np.ascontiguousarray(np.load(Path(settings.var_dir) / "bench-vectors.npy"))
    owner = np.load(Path(settings.var_dir) / "bench-owner.npy")
    categories = np.load(Path(settings.var_dir) / "bench-categories.npy")
    sq_norms = np.einsum("ij,ij->i", vectors, vectors)
    with ExitStack() as servers:
        server = servers.enter_context(
            serving(Path(settings.var_dir), Path(sys.executable).with_name("lookalike"), args.production)
        )
        port = server.port
        variants = {"look=0": (port, "&look=0"), "default look": (port, "")}
        if baseline is not None:
            other = servers.enter_context(
                serving(baseline / "var", baseline / ".venv" / "bin" / "lookalike", args.production, cwd=baseline)
            ).port
            variants[f"{args.against} default"] = (other, "")
        rng = np.random.default_rng(args.seed + 3)
        n_products = int(owner.max()) + 1
        products = rng.choice(n_products, args.queries, replace=False) + 1
        out: dict[str, Any] = {"server": "waitress" if args.production else "werkzeug threaded"}
        out["floor"] = framework_floor(port)
        for label, with_category in (("no filter", False), ("category filter", True)):
            connections = {
                name: http.client.HTTPConnection("127.0.0.1", p, timeout=30) for name, (p, _) in variants.items()
            }
            for warm in products[:20]:  # warm-up: the embedder, connections, caches (the look's scales)
                for name, (_, look) in variants.items():
                    connections[name].request("GET", f"/api/v1/products/{warm}/similar?limit=10{look}")
                    connections[name].getresponse().read()
            latencies: dict[str, list[float]] = {name: [] for name in variants}
            bodies, errors = [], 0
            elapsed = dict.fromkeys(variants, 0.0)
            for pid in products:
                category = CATEGORIES[categories[pid - 1]]
                for name, (_, look) in variants.items():  # interleaved: every variant sees the same machine
                    path = f"/api/v1/products/{pid}/similar?limit=10{look}"
                    path += f"&category={category}" if with_category else ""
                    tick = time.perf_counter()
                    connections[name].request("GET", path)
                    response = connections[name].getresponse()
                    body = response.read()
                    latencies[name].append(time.perf_counter() - tick)
                    elapsed[name] += latencies[name][-1]
                    if response.status != 200:
                        errors += 1
                    elif name == "look=0" and len(bodies) < args.recall_queries // 4:
                        bodies.append((pid, body))
            recalls = []  # after the timed loop: the exact grouping is slow and must not count
            for pid, body in bodies:
                got = [item["product"]["id"] for item in json.loads(body)["items"]]
                photos = vectors[np.nonzero(owner == pid - 1)[0]]
                if settings.product_query is ProductQuery.mean:  # exact for the service's own strategy
                    photos = photos.mean(axis=0, keepdims=True)
                mask = (categories[owner] == categories[pid - 1]) if with_category else None
                exact = exact_products(vectors, sq_norms, owner, photos, pid - 1, 10, mask)
                recalls.append(len(set(got) & set(exact)) / 10)
            for name in variants:
                out[f"{label}, {name}"] = {
                    **percentiles(latencies[name]),
                    "requests_per_s": len(products) / elapsed[name],
                    "errors": errors,
                    "product_recall_at_10": float(np.mean(recalls)),
                }
            for name in list(variants)[:1] + list(variants)[2:]:
                out[f"{label}, p50 ratio default look / {name}"] = (
                    out[f"{label}, default look"]["p50_ms"] / out[f"{label}, {name}"]["p50_ms"]
                )
        # Several shoppers at once: the default answer (no filter) over --connections connections.
        picks = rng.choice(n_products, args.concurrent_requests) + 1
        paths = [f"/api/v1/products/{pid}/similar?limit=10" for pid in picks]
        out["concurrent"] = concurrently(port, paths, args.connections)
        # The same requests with the 1000-d vector alone (the answer before the look existed).
        out["concurrent_look0"] = concurrently(port, [f"{path}&look=0" for path in paths], args.connections)
        if baseline is not None:  # the same requests against --against, right after
            out["concurrent_against"] = concurrently(variants[f"{args.against} default"][0], paths, args.connections)
        out["serving_process"] = resident_mb(server.process.pid)  # after every request above
        return out


FLOOR_PATH = "/api/v1/products/0/nothing-here"  # routed to a 404 by the app itself: no query, no index


def framework_floor(port: int, requests: int = 300) -> dict[str, float]:
    """An answer that does nothing, over the same connection type: waitress, Flask's routing and hooks, and this
    client, which every similar-items answer pays on top of its own work."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies = []
    for n in range(requests + 30):
        tick = time.perf_counter()
        connection.request("GET", FLOOR_PATH)
        response = connection.getresponse()
        response.read()
        if n >= 30:  # after a warm-up
            latencies.append(time.perf_counter() - tick)
        if response.status != 404:
            raise SystemExit(f"{FLOOR_PATH} answered {response.status}, not 404")
    return percentiles(latencies)


def concurrently(port: int, paths: list[str], connections: int, timeout_s: float = 120.0) -> dict[str, Any]:
    """`paths` over `connections` keep-alive connections at once, each a thread asking its next path as soon as
    the last one answered (a closed loop: requests/s is what the server keeps up with); bounded in count and time."""
    queue = iter(paths)
    take = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + timeout_s

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < deadline:
            with take:
                path = next(queue, None)
            if path is None:
                return
            tick = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            with take:
                latencies.append(time.perf_counter() - tick)
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    tick = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - tick
    figures = percentiles(latencies)
    return {
        "connections": connections,
        "requests": len(latencies),
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": figures["p50_ms"],
        "p99_ms": figures["p99_ms"],
        "errors": errors[0],
    }


def checkout(ref: str, root: Path) -> Path:
    """A worktree of this repository at `ref` with its own locked environment (uv sync)."""
    repo = Path(__file__).resolve().parents[1]
    target = root / "baseline"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(target), ref], check=True)
    found = shutil.which("uv")
    uv = [found] if found else ["python3", "-m", "uv"]  # as the Makefile finds it
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    subprocess.run([*uv, "sync", "--frozen", "--quiet"], cwd=target, env=env, check=True)
    return target


BUILD_AT_REF = """
import json, sys
from pathlib import Path
from backend.config import Settings
from bench.query_latency import build_catalog
settings = Settings(_env_file=None, var_dir=Path(sys.argv[1]), admin_token="b" * 24, default_model="untrained")
print(json.dumps(build_catalog(settings, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
"""


def build_at(target: Path, args: argparse.Namespace) -> dict[str, float]:
    """The same synthetic catalog, built by the code at `target` (its own schema and collection layout)."""
    var_dir = target / "var"
    var_dir.mkdir(exist_ok=True)
    env = {**{k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "VAR_DIR")}, "PYTHONPATH": str(target)}
    done = subprocess.run(
        [str(target / ".venv" / "bin" / "python"), "-c", BUILD_AT_REF, str(var_dir), str(args.photos),
         str(args.clusters), str(args.seed)],
        cwd=target, env=env, check=True, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(args: argparse.Namespace) -> dict[str, Any]:
    var_dir = args.var_dir or Path(tempfile.mkdtemp(prefix="lookalike-bench-"))
    # Synthetic vectors: no model runs, the collection is the untrained network's.
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        var_dir=var_dir,
        admin_token="b" * 24,
        default_model="untrained",
        vector_quantization=args.quantization,
        vector_memory=args.memory,
        hnsw_m=args.hnsw_m,
    )
    storage = storage_of(settings).resolved(args.photos)
    result: dict[str, Any] = {
        "photos": args.photos,
        "storage": {"quantization": storage.quantization, "memory": storage.memory, "hnsw_m": storage.hnsw_m},
        "hnsw_ef": settings.hnsw_ef,
        "product_query": settings.product_query.value,
    }
    baseline: Path | None = None
    scratch = Path(tempfile.mkdtemp(prefix="lookalike-baseline-")) if args.against else None
    try:
        if not args.reuse:
            result["build"] = build_catalog(settings, args.photos, args.clusters, args.seed)
        if scratch is not None:
            baseline = checkout(args.against, scratch)
            result[f"build at {args.against}"] = build_at(baseline, args)
        result["index_alone"] = index_alone(settings, args)
        result["http"] = over_http(settings, args, baseline)
    finally:
        if args.var_dir is None:
            shutil.rmtree(var_dir, ignore_errors=True)
        if baseline is not None:
            repo = Path(__file__).resolve().parents[1]
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(baseline)], check=False)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def report(result: dict[str, Any]) -> None:
    header = f"{result['photos']} photos, hnsw_ef {result['hnsw_ef']}, product query {result['product_query']}"
    print(f"\n{header}; build {json.dumps(result.get('build', {}))}")
    for label in ("no filter", "category filter"):
        alone = result["index_alone"][label]
        print(f"[{label}]")
        print(
            f"  index query alone  p50 {alone['index']['p50_ms']:6.2f} ms  p99 {alone['index']['p99_ms']:6.2f} ms"
            f"  recall@10 {alone['recall_at_10']:.3f}"
        )
        print(f"  numpy exact        p50 {alone['numpy_exact']['p50_ms']:6.2f} ms")
        names = [key.removeprefix(f"{label}, ") for key in result["http"] if key.startswith(f"{label}, ")]
        for name in [n for n in names if not n.startswith("p50 ratio")]:
            http_ = result["http"][f"{label}, {name}"]
            print(
                f"  HTTP {name:<16} p50 {http_['p50_ms']:6.2f} ms  p95 {http_['p95_ms']:6.2f} ms"
                f"  p99 {http_['p99_ms']:6.2f} ms  {http_['requests_per_s']:6.1f} req/s"
                f"  product recall@10 {http_['product_recall_at_10']:.3f}  errors {http_['errors']}"
            )
        for name in [n for n in names if n.startswith("p50 ratio")]:
            print(f"  {name}: {result['http'][f'{label}, {name}']:.2f}")
        target = 2.5 if label == "no filter" else 3.0
        for name in ("look=0", "default look"):
            http_ = result["http"][f"{label}, {name}"]
            print(
                f"  HTTP {name} p50 / index alone p50: {http_['p50_ms'] / alone['index']['p50_ms']:.2f}"
                f" (target <= {target}); its p99 / p50: {http_['p99_ms'] / http_['p50_ms']:.2f} (target <= 3)"
            )
    floor = result["http"].get("floor")
    if floor:
        print(f"[floor] a 404 from the app over HTTP: p50 {floor['p50_ms']:.2f} ms  p99 {floor['p99_ms']:.2f} ms")
    memory = result["http"].get("serving_process")
    if memory:
        print(
            f"[serving process] RSS {memory['rss_mb']:.0f} MB (heap {memory['rss_anon_mb']:.0f} MB, mapped files"
            f" {memory['rss_file_mb']:.0f} MB); storage {json.dumps(result.get('storage', {}))}"
        )
    for key, whose in (
        ("concurrent", "default look, no filter, this checkout"),
        ("concurrent_look0", "look=0, no filter, this checkout"),
        ("concurrent_against", "default look, no filter, --against"),
    ):
        many = result["http"].get(key)
        if many:
            print(
                f"[{many['connections']} connections, {whose}]"
                f" {many['requests_per_s']:.1f} req/s  p50 {many['p50_ms']:.2f} ms  p99 {many['p99_ms']:.2f} ms"
                f"  errors {many['errors']}  (target: >= 300 req/s)"
            )


if __name__ == "__main__":
    main(get_args_parser().parse_args())
