"""Ingest throughput: photos/s from enqueue to `indexed` through the full stack, against the forward pass alone.

    uv run python bench/ingest.py --data ../shared/datasets/clothing-small/validation

It starts what production runs: a private redis-server, a fresh PostgreSQL database, and one
`lookalike worker` process (prefork pool) that owns the Qdrant Edge store. Products are created
first (not timed); a warm-up batch loads the model in the worker; then every photo is enqueued in
tasks of --batch-size and the clock runs until the database says the last one is `indexed`.
The forward pass alone is measured in this process, in the same run, on the same photos.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import torch
from flask_migrate import upgrade
from PIL import Image
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.app import create_app  # noqa: E402
from backend.config import Settings  # noqa: E402
from backend.core.extensions import db  # noqa: E402
from backend.db.models import ProductImage  # noqa: E402
from backend.services.feeds import FolderPhotos, Handoff, import_rows, tree_rows  # noqa: E402
from backend.worker.tasks import enqueue_embedding  # noqa: E402
from ml.datasets import IMAGE_SUFFIXES  # noqa: E402
from ml.loading import load_embedder  # noqa: E402
from scripts.harness import free_port  # noqa: E402

LOOKALIKE = str(Path(sys.executable).with_name("lookalike"))


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a folder of <category>/<photo> files")
    parser.add_argument("--photos", type=int, default=320)
    parser.add_argument("--batch-size", type=int, default=32, help="photos per task (EMBED_BATCH_SIZE)")
    parser.add_argument(
        "--model", default="efficientnet_lite0-imagenet", help="DEFAULT_MODEL of the stack (built-in, or untrained)"
    )
    parser.add_argument("--image-size", type=int, default=224, help="the untrained network's input size")
    parser.add_argument("--warm-up", type=int, default=32, help="photos indexed before the clock starts")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser


def pick(data: Path, count: int, into: Path) -> list[Path]:
    """The first `count` photos, one category folder per category, linked under `into` for the importer."""
    paths = sorted(p for p in data.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if len(paths) < count:
        raise SystemExit(f"only {len(paths)} photos under {data}")
    for path in paths:
        target = into / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(path.resolve())
    return paths


def forward_only(settings: Settings, paths: list[Path], batch_size: int) -> float:
    """photos/s of the forward pass on preprocessed batches (decode and preprocess not timed)."""
    embedder = load_embedder(
        settings.default_model,
        device="cpu",
        batch_size=batch_size,
        image_size=settings.embed_image_size,
        seed=settings.untrained_seed,
    )
    batches = [
        embedder.preprocess([Image.open(p).convert("RGB") for p in paths[i : i + batch_size]])
        for i in range(0, len(paths), batch_size)
    ]
    embedder.forward(batches[0])  # warm-up
    times = []
    for batch in batches:
        start = time.perf_counter()
        embedder.forward(batch)
        times.append((time.perf_counter() - start) / len(batch))
    return 1 / statistics.median(times)


def indexed(app: object) -> int:
    with app.app_context():  # type: ignore[attr-defined]
        query = select(func.count()).select_from(ProductImage).where(ProductImage.status == "indexed")
        return int(db.session.scalar(query) or 0)


def wait_indexed(app: object, target: int, worker: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while indexed(app) < target:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the worker stopped or timed out:\n" + log.read_text()[-3000:])
        time.sleep(0.05)


def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(torch.get_num_threads())
    tmp = Path(tempfile.mkdtemp(prefix="lookalike-ingest-"))
    name = f"lookalike_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.postgres, autocommit=True, connect_timeout=5)
    admin.execute(f'CREATE DATABASE "{name}"')
    redis_port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    worker = None
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.postgres.rsplit('/', 1)[0]}/{name}",
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "VAR_DIR": str(tmp / "var"),
        "EMBED_BATCH_SIZE": str(args.batch_size),
        "EMBED_IMAGE_SIZE": str(args.image_size),
        "DEFAULT_MODEL": args.model,
        "DEVICE": "cpu",
        "ADMIN_TOKEN": "bench-admin-token-0123456789",
    }
    env.pop("QDRANT_URL", None)
    try:
        settings = Settings(
            _env_file=None,
            **{k.lower(): v for k, v in env.items() if k.isupper() and k.lower() in Settings.model_fields},
        )  # type: ignore[arg-type]
        app = create_app(settings)
        with app.app_context():
            upgrade()
        paths = pick(args.data, args.photos + args.warm_up, tmp / "photos")
        print(
            f"photos: {len(paths)} from {args.data} ({args.warm_up} for warm-up), batch {args.batch_size}, "
            f"model {args.model}, torch threads {torch.get_num_threads()}"
        )

        forward = forward_only(settings, paths[args.warm_up :], args.batch_size)
        print(f"forward pass alone (this process):   {forward:7.1f} photos/s")

        start = time.perf_counter()
        none = Handoff(embed=lambda ids: None, payload_sync=lambda product_id: None, point_deletes=lambda ids: None)
        with app.app_context():
            summary = import_rows(
                session=db.session,
                settings=settings,
                rows=tree_rows(tmp / "photos"),
                photos=FolderPhotos(tmp / "photos", confined=False),
                handoff=none,
            )
        print(f"products created (not timed): {summary.created} in {time.perf_counter() - start:.1f} s")
        ids = sorted(summary.image_ids)
        log = tmp / "worker.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                [LOOKALIKE, "worker", "--loglevel=WARNING"], env=env, cwd=tmp, stdout=out, stderr=subprocess.STDOUT
            )
        warm, rest = ids[: args.warm_up], ids[args.warm_up :]
        cold_start = time.perf_counter()
        with app.app_context():
            enqueue_embedding(warm)
        wait_indexed(app, len(warm), worker, log, 300)
        print(f"worker start + first {len(warm)} photos: {time.perf_counter() - cold_start:.1f} s (loads the model)")

        start = time.perf_counter()
        with app.app_context():
            enqueue_embedding(rest)
        enqueued = time.perf_counter() - start
        wait_indexed(app, len(ids), worker, log, 1800)
        elapsed = time.perf_counter() - start
        e2e = len(rest) / elapsed
        print(
            f"enqueue -> indexed (real worker):    {e2e:7.1f} photos/s  ({len(rest)} photos in {elapsed:.1f} s; "
            f"enqueueing took {enqueued * 1000:.0f} ms)"
        )
        print(f"ratio end-to-end / forward:          {e2e / forward:7.2f}  (target >= 0.90 on CPU)")
        if args.json:
            args.json.write_text(json.dumps({"forward": forward, "end_to_end": e2e, "ratio": e2e / forward}, indent=2))
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=60)
        redis.terminate()
        from backend.index import close_all

        close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
