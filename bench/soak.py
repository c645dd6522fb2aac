"""A soak: one `lookalike serve --production` on the embedded default under mixed traffic for N minutes.

    uv run python bench/soak.py --minutes 10 --json soak.json

Real photos (clothing-small validation), the default model. The catalog is seeded and the server restarted on it
(--fresh: not), then traffic, all to 127.0.0.1, bounded and stopping by itself: similar-items queries at --rate a
second (random products, a third with a category filter), a photo search every 2 s, an upload every 5 s, one feed
import (a CSV and a zip of 40 photos) a third of the way in, and one reindex (Activate on the models page, the live
model again) at half-time. Per minute: p50 and p99 of the shoppers' calls (similar items and photo searches), the
serving process's resident memory (and its heap and mapped-file parts), and errors. Writes
{"errors_5xx", "errors_other", "p50_ms_by_minute", "p99_ms_by_minute", "rss_mb_by_minute", "rss_growth_pct", ...}.
Targets: no 5xx, every minute's p99 within 2x of the first minute's, RSS growth at most 10% over the run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "datasets" / "clothing-small" / "validation"
sys.path.insert(0, str(ROOT))

from scripts import harness  # noqa: E402

TOKEN = "soak-admin-token-0123456789abcdef"


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="similar-items queries per second")
    parser.add_argument("--products", type=int, default=120, help="products uploaded before the traffic starts")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="a folder of <category>/<photo>")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--plot", type=Path, help="a picture of every shopper call's latency over the run (PNG)")
    parser.add_argument(
        "--fresh", action="store_true", help="keep the server that seeded the catalog (default: restart it on it)"
    )
    return parser


def rss_mb(pid: int) -> tuple[float, float, float]:
    """A process's resident memory in MB: (all of it, its anonymous part, its file-backed part)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    total, anon, file = (float(fields[key].split()[0]) / 1024 for key in ("VmRSS", "RssAnon", "RssFile"))
    return total, anon, file


class Recorder:
    """Latencies of the shoppers' calls and errors, by minute since the start."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.lock = threading.Lock()
        self.latency: dict[int, list[float]] = {}
        self.trace: list[tuple[float, str, float]] = []  # (seconds since the start, call, ms) of the shoppers'
        self.errors_5xx: list[str] = []
        self.errors_other: list[str] = []
        self.calls = 0

    def minute(self) -> int:
        return int((time.monotonic() - self.started) // 60)

    def record(self, what: str, response: httpx.Response | None, seconds: float, shopper: bool) -> None:
        with self.lock:
            self.calls += 1
            if response is None:
                self.errors_other.append(f"{what}: no answer")
            elif response.status_code >= 500:
                self.errors_5xx.append(f"{what}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                self.errors_other.append(f"{what}: {response.status_code} {response.text[:200]}")
            if shopper and response is not None and response.status_code < 400:
                self.latency.setdefault(self.minute(), []).append(seconds * 1000)
                self.trace.append((time.monotonic() - self.started - seconds, what, seconds * 1000))


def call(client: httpx.Client, recorder: Recorder, what: str, shopper: bool, **request: Any) -> httpx.Response | None:
    tick = time.perf_counter()
    try:
        response = client.request(**request)
    except httpx.HTTPError:
        response = None
    recorder.record(what, response, time.perf_counter() - tick, shopper)
    return response


def admin_activate(base: str, version: str) -> int:
    """Activate on the models page, as an admin would: log in, then the form with its CSRF token."""
    with httpx.Client(base_url=base, timeout=60, follow_redirects=False) as page:
        token = re.search(r'name="csrf_token"[^>]*? value="([^"]+)"', page.get("/admin/login").text)
        assert token, "the login form has a CSRF token"
        page.post("/admin/login", data={"token": TOKEN, "csrf_token": token.group(1)})
        token = re.search(r'name="csrf_token"[^>]*? value="([^"]+)"', page.get("/admin/models").text)
        assert token, "the models page has a form"
        return page.post("/admin/models/activate", data={"version": version, "csrf_token": token.group(1)}).status_code


def main(args: argparse.Namespace) -> dict[str, Any]:
    photos = sorted(p for p in args.photos.glob("*/*.jpg"))
    if len(photos) < args.products + 100:
        raise SystemExit(f"{args.photos}: {len(photos)} photos, the soak needs {args.products + 100}")
    random.seed(0)
    random.shuffle(photos)
    seed, later, feed_photos = photos[: args.products], photos[args.products : -40], photos[-40:]
    var = Path(tempfile.mkdtemp(prefix="lookalike-soak-"))
    port = harness.free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "QDRANT_URL", "VAR_DIR"}}
    env.update(VAR_DIR=str(var), PORT=str(port), ADMIN_TOKEN=TOKEN, RATE_LIMIT_SEARCH="100000/minute")
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    result: dict[str, Any] = {
        "minutes": args.minutes,
        "rate_per_s": args.rate,
        "products_at_start": args.products,
        "start": "fresh" if args.fresh else "restarted on the seeded catalog",
    }

    def start_server() -> subprocess.Popen[bytes]:
        server = harness.start(env, cwd=ROOT, log_path=var / "serve.log", args=["--production"], port=port)
        harness.wait_healthy(server)
        return server.process

    server = start_server()
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            for n, path in enumerate(seed):
                files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
                data = {"sku": f"SOAK-{n:05d}", "title": f"Soak {n}", "category": path.parent.name}
                assert client.post("/api/v1/products", data=data, files=files, headers=auth).status_code == 201
            version = client.get("/api/v1/stats").json()["model"]["version"]
        if not args.fresh:
            # As a server starts on an existing catalog: its collection loaded from disk, whose files the store maps
            # whole. A collection born in this process maps only what it has written, so from a fresh start the
            # reindex's new collection alone added 5 x 32 MB of mapped files (once; the next reindexes add none).
            server.terminate()
            server.wait(timeout=60)
            server = start_server()
        with httpx.Client(base_url=base, timeout=60) as client:
            # Warm, as a deploy's readiness check would: the model loaded and the first query of each kind served,
            # so that the first minute is one of traffic, not of start-up.
            for n in range(20):
                client.get(f"/api/v1/products/{n + 1}/similar?limit=10")
            for path in seed[:3]:
                files = {"image": (path.name, path.read_bytes(), "image/jpeg")}
                client.post("/api/v1/search", files=files)
        print(f"{len(seed)} products in; {args.minutes:g} minutes of traffic", flush=True)

        started = time.monotonic()
        recorder = Recorder(started)
        rss: dict[int, float] = {}
        parts: dict[int, tuple[float, float]] = {}
        stop_at = started + args.minutes * 60
        ids = list(range(1, len(seed) + 1))
        categories = sorted({p.parent.name for p in seed})
        events: list[str] = []
        local = threading.local()

        def client() -> httpx.Client:
            if not hasattr(local, "client"):
                local.client = httpx.Client(base_url=base, timeout=60)
            return local.client  # type: ignore[no-any-return]

        def similar() -> None:
            pid = random.choice(ids)
            query = f"&category={random.choice(categories)}" if random.random() < 1 / 3 else ""
            call(
                client(), recorder, "similar", True, method="GET", url=f"/api/v1/products/{pid}/similar?limit=10{query}"
            )

        def search() -> None:
            path = random.choice(seed)
            files = {"image": (path.name, path.read_bytes(), "image/jpeg")}
            call(client(), recorder, "search", True, method="POST", url="/api/v1/search", files=files)

        counter = iter(range(len(later)))

        def upload() -> None:
            n = next(counter, None)
            if n is None:
                return
            path = later[n]
            files = [("images", (path.name, path.read_bytes(), "image/jpeg"))]
            data = {"sku": f"LATER-{n:05d}", "title": f"Later {n}", "category": path.parent.name}
            response = call(
                client(), recorder, "upload", False, method="POST", url="/api/v1/products", data=data, files=files,
                headers=auth,
            )  # fmt: skip
            if response is not None and response.status_code == 201:
                ids.append(response.json()["id"])

        def feed_import() -> None:
            archive = io.BytesIO()
            rows = ["sku,title,category,images"]
            with zipfile.ZipFile(archive, "w") as z:
                for n, path in enumerate(feed_photos):
                    z.writestr(f"{n}.jpg", path.read_bytes())
                    rows.append(f"FEED-{n:04d},Feed {n},{path.parent.name},{n}.jpg")
            files = {
                "feed": ("feed.csv", ("\n".join(rows) + "\n").encode(), "text/csv"),
                "photos": ("photos.zip", archive.getvalue(), "application/zip"),
            }
            response = call(client(), recorder, "import", False, method="POST", url="/api/v1/imports", files=files,
                            headers=auth)  # fmt: skip
            events.append(f"import at {time.monotonic() - started:.0f} s: {response.status_code if response else '-'}")

        def reindex() -> None:
            events.append(f"reindex at {time.monotonic() - started:.0f} s: {admin_activate(base, version)}")

        pool = ThreadPoolExecutor(max_workers=6)
        tick, second = started, 0
        imported = reindexed = False
        while time.monotonic() < stop_at:
            for _ in range(int(args.rate)):
                pool.submit(similar)
            if second % 2 == 0:
                pool.submit(search)
            if second % 5 == 0:
                pool.submit(upload)
            elapsed = time.monotonic() - started
            if not imported and elapsed >= args.minutes * 60 / 3:
                imported = True
                pool.submit(feed_import)
            if not reindexed and elapsed >= args.minutes * 60 / 2:
                reindexed = True
                pool.submit(reindex)
            minute = int(elapsed // 60)
            total, anon, file = rss_mb(server.pid)  # the last reading of each minute
            rss[minute], parts[minute] = total, (anon, file)
            second += 1
            tick += 1.0
            time.sleep(max(0.0, tick - time.monotonic()))
        pool.shutdown(wait=True)

        minutes = sorted(m for m in recorder.latency if m < int(args.minutes + 0.999))
        p50 = [float(np.percentile(recorder.latency[m], 50)) for m in minutes]
        p99 = [float(np.percentile(recorder.latency[m], 99)) for m in minutes]
        rss_list = [rss[m] for m in sorted(rss)]
        with httpx.Client(base_url=base, timeout=30) as c:
            stats = c.get("/api/v1/stats").json()
        result |= {
            "errors_5xx": len(recorder.errors_5xx),
            "errors_other": len(recorder.errors_other),
            "calls": recorder.calls,
            "p50_ms_by_minute": [round(v, 2) for v in p50],
            "p99_ms_by_minute": [round(v, 2) for v in p99],
            "rss_mb_by_minute": [round(v, 1) for v in rss_list],
            "rss_growth_pct": round((rss_list[-1] - rss_list[0]) / rss_list[0] * 100, 2),
            # the heap, and the mapped files (the library code, the index's files) that make up the RSS
            "rss_anon_mb_by_minute": [round(parts[m][0], 1) for m in sorted(parts)],
            "rss_file_mb_by_minute": [round(parts[m][1], 1) for m in sorted(parts)],
            "worst_p99_over_first": round(max(p99) / p99[0], 2),
            "events": events,
            "photos_by_status": stats["images"],
            "error_examples": (recorder.errors_5xx + recorder.errors_other)[:5],
        }
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(var, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.plot:
        plot_trace(recorder.trace, result, args.plot)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


def plot_trace(trace: list[tuple[float, str, float]], result: dict[str, Any], path: Path) -> None:
    """Each shopper call as a dot (time, latency, log scale), the minutes' p99, the import and the reindex."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for what, colour in (("similar", "tab:blue"), ("search", "tab:orange")):
        points = [(t, ms) for t, name, ms in trace if name == what]
        ax.scatter([t for t, _ in points], [ms for _, ms in points], s=4, alpha=0.4, color=colour, label=what)
    p99 = result["p99_ms_by_minute"]
    edges = [60 * m for m in range(len(p99) + 1)]
    ax.step(edges, [*p99, p99[-1]], where="post", color="black", label="p99 of the minute")
    ax.axhline(2 * p99[0], color="red", linestyle=":", label="2x the first minute's p99")
    for event in result["events"]:
        at = float(re.search(r" at (\d+) s", event).group(1))  # type: ignore[union-attr]
        ax.axvline(at, color="grey", linestyle="--")
        ax.annotate(event.split(" at ")[0], (at, ax.get_ylim()[1]), rotation=90, va="top", ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set(xlabel="seconds since the start", ylabel="ms", title="bench/soak.py: shoppers' calls")
    ax.legend(loc="upper left", fontsize=8, markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
