"""Shopper events do not slow the look-alikes: similar-items latency over HTTP while 10,000 events arrive in a
burst, against the same queries without them, in one run.

    uv run python bench/events_burst.py [--photos ../shared/datasets/clothing-small/validation] [--events 10000]

A fresh embedded install (`lookalike serve --production`, the default model) gets --products real photos, then
rounds alternate: --queries similar-items GETs (2 client threads) alone, and the same with a third and fourth
thread posting --events single events (as the widget's beacons do: impressions and clicks) as fast as the server
takes them. Prints p50/p99 of the queries in each kind of round, the ratio of the p99s (target: at most 1.20),
the events' rate and how many the database holds at the end (all of them: none lost).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.harness import clean_env, serving  # noqa: E402

TOKEN = "bench-events-" + "t" * 16


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared/datasets/clothing-small/validation")
    parser.add_argument("--products", type=int, default=120)
    parser.add_argument("--queries", type=int, default=300, help="similar-items GETs per round")
    parser.add_argument("--events", type=int, default=10_000, help="events per burst round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind, interleaved")
    parser.add_argument("--rate", type=float, default=0, help="events/s to send at (0: as fast as accepted)")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def queries(base: str, ids: list[int], count: int) -> list[float]:
    """Latencies of `count` similar-items GETs from two threads."""

    def run(seed: int) -> list[float]:
        rng, out = random.Random(seed), []
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(count // 2):
                started = time.perf_counter()
                assert client.get(f"/api/v1/products/{rng.choice(ids)}/similar?limit=10").status_code == 200
                out.append(time.perf_counter() - started)
        return out

    with ThreadPoolExecutor(2) as pool:
        return [s for part in pool.map(run, [1, 2]) for s in part]


def burst(base: str, ids: list[int], count: int, rate: float, done: threading.Event) -> float:
    """Post `count` single events from two threads (at `rate` events/s in all, or as fast as taken); events/s."""

    def run(seed: int) -> None:
        rng = random.Random(seed)
        start = time.perf_counter()
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(count // 2):
                if rate:
                    time.sleep(max(0.0, start + n / (rate / 2) - time.perf_counter()))
                query, product = rng.sample(ids, 2)
                event = (
                    {"type": "impression", "shown": rng.sample(ids, 8)}
                    if n % 4
                    else {"type": "click", "product": product, "position": rng.randint(1, 8)}
                )
                body = {**event, "query": query, "visitor": f"visitor-{seed}-{n % 500:04d}", "model_version": "bench"}
                answer = client.post("/api/v1/events", content=json.dumps(body), headers={"Content-Type": "text/plain"})
                assert answer.status_code == 202, answer.text

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(run, [3, 4]))
    done.set()
    return count / (time.perf_counter() - started)


def main() -> None:
    args = parse()
    photos = sorted(args.photos.glob("*/*.jpg"))[: args.products]
    with tempfile.TemporaryDirectory(prefix="lookalike-events-") as tmp:
        env = clean_env(VAR_DIR=str(Path(tmp) / "var"), ADMIN_TOKEN=TOKEN, RATE_LIMIT_EVENTS="1000000/minute")
        with serving(env, cwd=Path(tmp), log_path=Path(tmp) / "serve.log", args=["--production"]) as server:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            ids = []
            with httpx.Client(base_url=server.base, timeout=120) as client:
                for n, path in enumerate(photos):
                    data = {"sku": f"B-{n:04d}", "title": path.stem, "category": path.parent.name}
                    files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
                    ids.append(client.post("/api/v1/products", data=data, files=files, headers=auth).json()["id"])
            pace = f"{args.rate:.0f} events/s" if args.rate else "as fast as the server takes them"
            print(f"{len(ids)} products indexed; {args.rounds} rounds of each kind; events {pace}", flush=True)
            queries(server.base, ids, 100)  # warm
            quiet: list[float] = []
            loaded: list[float] = []
            rates: list[float] = []
            for round_ in range(args.rounds):
                quiet += queries(server.base, ids, args.queries)
                done = threading.Event()
                with ThreadPoolExecutor(1) as pool:
                    rate = pool.submit(burst, server.base, ids, args.events, args.rate, done)
                    during = []
                    while not done.is_set():  # queries for as long as the burst lasts
                        during += queries(server.base, ids, 40)
                    rates.append(rate.result())
                loaded += during
                print(f"round {round_ + 1}: {len(during)} queries during {args.events} events", flush=True)
            time.sleep(2)  # the writer's last batch
        with sqlite3.connect(Path(tmp) / "var" / "lookalike.db") as connection:
            kept = connection.execute("SELECT count(*) FROM shopper_events").fetchone()[0]
    p = {name: (float(np.percentile(np.array(s) * 1000, 50)), float(np.percentile(np.array(s) * 1000, 99)))
         for name, s in (("quiet", quiet), ("burst", loaded))}  # fmt: skip
    ratio = p["burst"][1] / p["quiet"][1]
    print(f"similar items, no events:     p50 {p['quiet'][0]:6.1f} ms  p99 {p['quiet'][1]:6.1f} ms  ({len(quiet)})")
    print(f"similar items, during burst:  p50 {p['burst'][0]:6.1f} ms  p99 {p['burst'][1]:6.1f} ms  ({len(loaded)})")
    print(f"p99 ratio burst / quiet: {ratio:.2f}  (target <= 1.20)")
    print(f"events: median {statistics.median(rates):.0f} events/s; kept {kept} of {args.events * args.rounds}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "quiet": p["quiet"],
                    "burst": p["burst"],
                    "p99_ratio": ratio,
                    "events_per_s": rates,
                    "kept": kept,
                    "sent": args.events * args.rounds,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
