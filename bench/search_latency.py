"""Search by photo: `POST /api/v1/search` over HTTP against decoding the photo and one forward pass alone.

    uv run python bench/search_latency.py --data ../shared/datasets/clothing-small/validation

Imports the folder into a fresh embedded catalog (`lookalike import`, the default model), serves it with
`lookalike serve --production`, then in one run, interleaved: a shopper's photo (a catalog photo with its longer
side at --side pixels, JPEG) posted to /api/v1/search, and in this process the same bytes decoded and embedded
by the same model (the network's forward pass with the descriptors it computes on the way, as a search does).
Prints the p50 of each and their ratio (target: search p50 <= 1.3x decode + forward).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.domain.photos import DECODE_MIN_SIDE, open_photo  # noqa: E402
from ml.datasets import IMAGE_SUFFIXES  # noqa: E402
from ml.loading import load_embedder  # noqa: E402
from scripts.harness import LOOKALIKE, clean_env, serving  # noqa: E402


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of <category>/<photo> files")
    parser.add_argument("--model", default="efficientnet_lite0-imagenet", help="DEFAULT_MODEL of the catalog")
    parser.add_argument("--side", type=int, default=256, help="the posted photo's longer side, pixels")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument(
        "--pause",
        type=float,
        default=0.05,
        help="seconds between the two measurements, so that neither starts while the other's OpenMP threads still"
        " spin (torch's workers spin-wait a few ms after a forward pass; on 2 cores they took the other's CPU)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def shopper_photo(path: Path, side: int) -> bytes:
    image = Image.open(path).convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main(args: argparse.Namespace) -> dict[str, object]:
    paths = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    photos = [shopper_photo(p, args.side) for p in paths[:: max(1, len(paths) // args.queries)][: args.queries]]
    embedder = load_embedder(args.model, device="cpu")
    with tempfile.TemporaryDirectory(prefix="lookalike-search-") as var:
        env = clean_env(VAR_DIR=var, DEFAULT_MODEL=args.model, RATE_LIMITS_ENABLED="false")
        subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
        subprocess.run([LOOKALIKE, "import", str(args.data)], env=env, cwd=ROOT, check=True, capture_output=True)
        with (
            serving(env, cwd=ROOT, log_path=Path(var) / "serve.log", args=["--production"]) as server,
            httpx.Client(base_url=server.base, timeout=60) as client,
        ):
            for data in photos[:5]:  # warm-up: the server's model and the look's scales, this process's model
                client.post("/api/v1/search", files={"image": ("p.jpg", data, "image/jpeg")}).raise_for_status()
                embedder.describe([open_photo(data, 40_000_000, 10.0, min_side=DECODE_MIN_SIDE)])
            searches, alone = [], []
            for data in photos:  # interleaved: both see the same machine
                time.sleep(args.pause)
                tick = time.perf_counter()
                response = client.post("/api/v1/search", files={"image": ("p.jpg", data, "image/jpeg")})
                searches.append(time.perf_counter() - tick)
                response.raise_for_status()
                time.sleep(args.pause)
                tick = time.perf_counter()
                embedder.describe([open_photo(data, 40_000_000, 10.0, min_side=DECODE_MIN_SIDE)])
                alone.append(time.perf_counter() - tick)
    result: dict[str, object] = {
        "model": args.model,
        "photos_in_catalog": len(paths),
        "side": args.side,
        "queries": len(photos),
        "search_p50_ms": statistics.median(searches) * 1000,
        "decode_forward_p50_ms": statistics.median(alone) * 1000,
    }
    result["ratio"] = float(result["search_p50_ms"]) / float(result["decode_forward_p50_ms"])  # type: ignore[arg-type]
    print(
        f"{args.model}, {len(paths)} photos, {len(photos)} searches of {args.side} px photos:"
        f"\n  POST /api/v1/search          p50 {result['search_p50_ms']:7.1f} ms"
        f"\n  decode + forward pass alone  p50 {result['decode_forward_p50_ms']:7.1f} ms"
        f"\n  ratio {result['ratio']:.2f} (target <= 1.3)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
