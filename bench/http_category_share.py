"""Quality over HTTP: the share of each product's 10 similar items that have its category.

    uv run python bench/http_category_share.py --data ../shared/datasets/clothing-small/validation

What a shop sees after `lookalike import DIR` and `make run`: this script does exactly that in a
fresh VAR_DIR (SQLite, Qdrant Edge, the default model unless --model names another built-in one),
then asks `GET /api/v1/products/<id>/similar?limit=10` for every product over HTTP and prints the
mean share of same-category items, the chance level (the category's share of the other products),
and the request latency. With --checkpoint it registers and activates a fine-tuned model after the
import (a reindex), as a shop would. With --url it only queries a server that is already running.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.harness import LOOKALIKE, clean_env, serving  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a folder of <category>/<photo> files to import")
    parser.add_argument("--url", help="query this running server instead (e.g. http://127.0.0.1:8000)")
    parser.add_argument("--model", default=None, help="DEFAULT_MODEL for the fresh install (default: the product's)")
    parser.add_argument(
        "--checkpoint", type=Path, help="register and activate this fine-tuned checkpoint after the import"
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


@contextmanager
def fresh_server(data: Path, model: str | None, checkpoint: Path | None, port: int) -> Iterator[str]:
    """Import `data` into a new VAR_DIR, serve it on 127.0.0.1:`port`, stop the server at the end."""
    with tempfile.TemporaryDirectory(prefix="lookalike-bench-") as var:
        env = clean_env(VAR_DIR=var)
        if model:
            env["DEFAULT_MODEL"] = model
        subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        started = time.perf_counter()
        subprocess.run([LOOKALIKE, "import", str(data)], env=env, cwd=ROOT, check=True)
        print(f"imported in {time.perf_counter() - started:.0f} s", flush=True)
        if checkpoint is not None:
            registered = subprocess.run(
                [LOOKALIKE, "model", "register", str(checkpoint.resolve())],
                env=env, cwd=ROOT, check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            version = registered.split()[1]
            subprocess.run([LOOKALIKE, "model", "activate", version], env=env, cwd=ROOT, check=True)
        with serving(env, cwd=ROOT, log_path=Path(var) / "serve.log", port=port) as server:
            yield server.base


def products(client: httpx.Client) -> list[dict[str, object]]:
    items, page = [], 1
    while True:
        body = client.get("/api/v1/products", params={"page": page, "per_page": 100}).json()
        items += body["items"]
        if len(body["items"]) < 100:
            return items
        page += 1


def measure(url: str, limit: int) -> dict[str, object]:
    with httpx.Client(base_url=url, timeout=30) as client:
        stats = client.get("/api/v1/stats").json()
        catalog = products(client)
        counts = Counter(str(p["category"]) for p in catalog)
        shares, chance, latencies, errors = [], [], [], Counter()
        for product in catalog:
            started = time.perf_counter()
            response = client.get(f"/api/v1/products/{product['id']}/similar", params={"limit": limit})
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                errors[response.json().get("error", str(response.status_code))] += 1
                continue
            items = response.json()["items"]
            if items:
                same = sum(item["product"]["category"] == product["category"] for item in items)
                shares.append(same / len(items))
            chance.append((counts[str(product["category"])] - 1) / max(len(catalog) - 1, 1))
    result = {
        "url": url,
        "model": stats["model"],
        "products": len(catalog),
        "answered": len(shares),
        "errors": dict(errors),
        "limit": limit,
        "same_category_share": statistics.mean(shares) if shares else 0.0,
        "chance": statistics.mean(chance) if chance else 0.0,
        "median_latency_ms": 1000 * statistics.median(latencies) if latencies else None,
    }
    print(
        f"model {stats['model']['version']} ({stats['model'].get('origin', '?')}): {len(shares)} of {len(catalog)}"
        f" products answered; errors {dict(errors) or 'none'}"
    )
    print(f"same-category share of the {limit} similar items: {result['same_category_share']:.3f}")
    print(f"chance (category share of the other products):      {result['chance']:.3f}")
    print(f"median request latency: {result['median_latency_ms']:.1f} ms")
    return result


def main(args: argparse.Namespace) -> dict[str, object]:
    if args.url:
        result = measure(args.url, args.limit)
    elif args.data:
        with fresh_server(args.data, args.model, args.checkpoint, args.port) as url:
            result = measure(url, args.limit)
    else:
        raise SystemExit("give --data DIR (fresh install) or --url URL (a running server)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
