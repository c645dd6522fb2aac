"""CLI commands for the model pipeline: train, evaluate, embed, and the model registry."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

DEVICES = click.Choice(["auto", "cpu", "cuda"])


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.command("train")
@click.option(
    "--data", required=True, type=click.Path(exists=True, path_type=Path), help="Folder tree, CSV or DeepFashion root."
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option(
    "--weights", default="imagenet", show_default=True, help="imagenet, none, or a path to a ResNet50 state dict."
)
@click.option("--epochs-head", default=10, show_default=True, type=click.IntRange(min=0))
@click.option("--epochs-finetune", default=10, show_default=True, type=click.IntRange(min=0))
@click.option("--lr-head", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--lr-finetune", default=1e-4, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--image-size", default=224, show_default=True, type=click.IntRange(min=32))
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0), help="DataLoader workers.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Validation share when the data has no split of its own.",
)
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
def train_command(**options: object) -> None:
    """Fine-tune ResNet50 in two phases; writes best.pt, last.pt, metrics.json, curves.png."""
    from ml.datasets import DatasetError
    from ml.model import WeightsUnavailable
    from ml.train import TrainConfig, main

    options["data"], options["out"] = str(options["data"]), str(options["out"])
    try:
        metrics = main(TrainConfig(**options))  # type: ignore[arg-type]
    except (DatasetError, WeightsUnavailable, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    best = metrics["best"]
    click.echo(
        f"best: epoch {best['epoch'] + 1} of phase {best['phase']}, top-1 {best['top1']:.3f}, top-3 {best['top3']:.3f};"
        f" {metrics['seconds']:.0f} s; checkpoints in {options['out']}"
    )


@click.command("evaluate")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--split", default="validation", show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Default: the model's folder.")
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0))
def evaluate_command(**options: object) -> None:
    """Top-1/top-3, retrieval P@k and mAP@k (raw and L2-normalized) against two baselines; plots."""
    from ml.datasets import DatasetError
    from ml.evaluate import main

    try:
        result = main(**options)  # type: ignore[arg-type]
    except (DatasetError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    c = result["classification"]
    click.echo(f"{result['photos']} photos of {result['split']}: top-1 {c['top1']:.3f}, top-3 {c['top3']:.3f}")
    click.echo(f"{'features':<18} {'':<4} {'P@1':>6} {'P@10':>6} {'mAP@10':>7}")
    for name, variants in result["retrieval"].items():
        for variant, m in variants.items():
            click.echo(f"{name:<18} {variant:<4} {m['P@1']:6.3f} {m['P@10']:6.3f} {m['mAP@10']:7.3f}")
    folder = options["out"] or Path(str(options["model_path"])).parent
    click.echo(f"written: eval.json, confusion.png, neighbours.png in {folder}")


@click.command("embed")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="vectors.npy")
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0))
def embed_command(model_path: Path, directory: Path, out: Path, device: str, batch_size: int, workers: int) -> None:
    """Embed every photo under DIRECTORY with the workers' Embedder; OUT gets the vectors, OUT.ids.json the paths."""
    from ml.batch import embed_directory

    try:
        ids, vectors, skipped = embed_directory(
            model_path, directory, out, device=device, batch_size=batch_size, workers=workers
        )
    except (FileNotFoundError, ValueError) as exc:
        _fail(exc)
    click.echo(f"embedded {len(ids)} photos into {out} {tuple(vectors.shape)}; skipped {skipped} unreadable")


@click.group("model")
def model_group() -> None:
    """The model registry: register checkpoints, list them, activate one."""


@model_group.command("register")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def model_register(checkpoint: Path) -> None:
    """Register a checkpoint under its content-hash version."""
    from backend.extensions import db
    from backend.registry import RegistryError, register_model

    try:
        model = register_model(session=db.session, path=checkpoint)
    except RegistryError as exc:
        _fail(exc)
    click.echo(f"registered {model.version} ({len(model.class_names)} classes) from {model.path}")


@model_group.command("list")
@with_appcontext
def model_list() -> None:
    """Registered models as JSON, the active one marked."""
    from backend.extensions import db
    from backend.registry import list_models

    rows = [
        {
            "version": m.version,
            "active": m.active,
            "path": m.path,
            "classes": len(m.class_names),
            "top1": m.metrics.get("top1"),
            "top3": m.metrics.get("top3"),
        }
        for m in list_models(session=db.session)
    ]
    click.echo(json.dumps(rows, indent=2))


@model_group.command("activate")
@click.argument("version")
@with_appcontext
@click.option("--drop-wait", default=120.0, show_default=True, help="Seconds to wait for the old collection.")
def model_activate(version: str, drop_wait: float) -> None:
    """Make VERSION the model that embeds and answers: reindex every photo with it, then switch."""
    from backend.extensions import db
    from backend.pipeline_commands import run_reindex
    from backend.registry import RegistryError, check_activatable

    try:
        check_activatable(session=db.session, version=version)
    except RegistryError as exc:
        _fail(exc)
    run_reindex(version, drop_wait)
    click.echo(f"active model: {version}")


ML_COMMANDS = [train_command, evaluate_command, embed_command, model_group]
