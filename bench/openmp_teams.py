"""Why a serving process runs its forward passes on one thread: one photo's forward pass, as a search does it,
with only this thread's OpenMP team alive, then with the teams of more threads alive, then after they ended.

    uv run python bench/openmp_teams.py --data ../shared/datasets/clothing-small/validation

torch runs its operators on an OpenMP team of the calling thread, kept while that thread lives. Each extra
thread here runs one forward pass (so it has a team) and then waits, as an idle request thread of a web server
would. With more OpenMP threads alive than cores, libgomp stops spinning between operators and every operator
waits for its team to wake. Prints the p50 of each phase, twice over (backend.serving.embedders).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.domain.photos import DECODE_MIN_SIDE, open_photo  # noqa: E402
from bench.search_latency import shopper_photo  # noqa: E402
from ml.datasets import IMAGE_SUFFIXES  # noqa: E402
from ml.loading import load_embedder  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of <category>/<photo> files")
    parser.add_argument("--model", default="efficientnet_lite0-imagenet")
    parser.add_argument("--photos", type=int, default=40, help="forward passes per phase")
    parser.add_argument("--threads", type=int, default=7, help="other threads with a team in the middle phase")
    parser.add_argument("--side", type=int, default=256, help="the photo's longer side, pixels (a shopper's)")
    return parser


def main(args: argparse.Namespace) -> dict[str, list[float]]:
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    chosen = paths[:: max(1, len(paths) // args.photos)][: args.photos]
    images = [open_photo(shopper_photo(p, args.side), 40_000_000, 10.0, min_side=DECODE_MIN_SIDE) for p in chosen]
    embedder = load_embedder(args.model, device="cpu")
    for image in images[:5]:  # warm-up
        embedder.describe([image])

    def phase() -> float:
        times = []
        for image in images:
            tick = time.perf_counter()
            embedder.describe([image])
            times.append(time.perf_counter() - tick)
        return statistics.median(times) * 1000

    figures: dict[str, list[float]] = {"this thread only": [], "more teams alive": [], "after they ended": []}
    for _ in range(2):
        figures["this thread only"].append(phase())
        release, ready = threading.Event(), threading.Semaphore(0)

        def idle_with_a_team(ready: threading.Semaphore, release: threading.Event) -> None:
            embedder.describe([images[0]])
            ready.release()
            release.wait()

        others = [threading.Thread(target=idle_with_a_team, args=(ready, release)) for _ in range(args.threads)]
        for thread in others:
            thread.start()
        for _ in others:
            ready.acquire()
        figures["more teams alive"].append(phase())
        release.set()
        for thread in others:
            thread.join()
        time.sleep(0.2)
        figures["after they ended"].append(phase())
    print(f"{args.model}, one {args.side} px photo a forward pass, p50 of {len(images)} per phase, two rounds:")
    for name, values in figures.items():
        label = f"{name} ({args.threads} other threads)" if name == "more teams alive" else name
        print(f"  {label:36s} " + "  ".join(f"{v:6.1f} ms" for v in values))
    return figures


if __name__ == "__main__":
    main(get_args_parser().parse_args())
