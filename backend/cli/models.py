"""CLI commands for the model pipeline: train, evaluate, embed, and the models (built-in and registered)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask.cli import ScriptInfo, with_appcontext

from backend.cli.pipeline import run_reindex
from backend.config import DeviceChoice, current_settings
from backend.core.extensions import db
from backend.services.models import RegistryError, check_activatable, list_models, register_model
from backend.services.training_data import export_catalog
from backend.serving.active import active_collection
from ml.versions import ARCH_NAMES, DatasetError, UnknownArch, WeightsUnavailable, builtin_name

DEVICES = click.Choice([device.value for device in DeviceChoice])
RECIPE_CHOICES = ("full", "cpu")


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


@click.command("train")
@click.option("--data", type=click.Path(exists=True, path_type=Path), help="Folder tree, CSV or DeepFashion root.")
@click.option(
    "--from-catalog", is_flag=True, help="Train on the products in the database (category = label), split by product."
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Output folder.")
@click.option("--arch", default="efficientnet_lite0", show_default=True, type=click.Choice(ARCH_NAMES))
@click.option("--weights", default="imagenet", show_default=True, help="imagenet, none, or a path to a state dict.")
@click.option(
    "--recipe",
    default=None,
    type=click.Choice(RECIPE_CHOICES),
    help="cpu (the default): cached trunk, last stage fine-tuned, epoch chosen by validation P@10 (minutes on"
    " 2 cores); full: the paper's schedule, every layer at a small learning rate (GPU). On clothing-small cpu"
    " scored P@10 0.791 against full's 0.652, on the same photos, the GPU's included.",
)
@click.option("--epochs-head", default=None, type=click.IntRange(min=0), help="Default: the recipe's.")
@click.option("--epochs-finetune", default=None, type=click.IntRange(min=0), help="Default: the recipe's.")
@click.option("--lr-head", default=None, type=click.FloatRange(min=0, min_open=True), help="Default: the recipe's.")
@click.option("--lr-finetune", default=None, type=click.FloatRange(min=0, min_open=True), help="Default: the recipe's.")
@click.option("--batch-size", default=None, type=click.IntRange(min=1), help="Default: the recipe's.")
@click.option("--image-size", default=None, type=click.IntRange(min=32), help="Default: the architecture's.")
@click.option("--views", default=3, show_default=True, type=click.IntRange(min=1), help="cpu recipe: views per photo.")
@click.option(
    "--identity-weight",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="cpu recipe: weight of the product-identity loss where the data names products (a labels.csv with"
    " product_id, a product column, --from-catalog); 0: categories alone.",
)
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0), help="DataLoader workers.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--val-fraction",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Validation share when the data has no split of its own (of products with --from-catalog).",
)
@click.option("--min-products", default=5, show_default=True, type=click.IntRange(min=2), help="--from-catalog only.")
@click.option("--resume", is_flag=True, help="Continue from OUT/last.pt.")
def train_command(data: Path | None, from_catalog: bool, min_products: int, **options: Any) -> None:
    """Fine-tune an ImageNet backbone in two phases; writes best.pt, last.pt, metrics.json, curves.png.

    best.pt is the epoch with the best validation P@10 (L2-normalised 1000-d vectors, as the index serves them);
    when no epoch beats the starting point, a warning says so and metrics.json records beats_start: false."""
    # Here and in the commands below: torch takes seconds to import, and `--help` needs none of it.
    from ml import train

    if (data is None) == (not from_catalog):
        raise click.UsageError("give either --data or --from-catalog")
    if options["recipe"] is None:
        options["recipe"] = "cpu"
        click.echo("recipe: cpu, the better one on every machine measured (--recipe chooses)")
    if from_catalog:
        data = _export_catalog(options["out"], options["val_fraction"], options["seed"], min_products)
    options["data"], options["out"] = str(data), str(options["out"])
    try:
        metrics = train.main(train.TrainConfig(**options))
    except (DatasetError, WeightsUnavailable, UnknownArch, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    best = metrics["best"]
    start = metrics.get("start_P@10")
    extra = f", P@10 {best['P@10']:.3f} (from {start:.3f})" if start is not None else f", P@10 {best['P@10']:.3f}"
    click.echo(
        f"best: epoch {best['epoch'] + 1} of phase {best['phase']}, top-1 {best['top1']:.3f}, top-3 {best['top3']:.3f}"
        f"{extra}; {metrics['seconds']:.0f} s; checkpoints in {options['out']}"
    )
    if metrics["beats_start"] is False:
        click.echo(f"warning: {train.no_gain_message(metrics)}", err=True)


def _export_catalog(out: Path, val_fraction: float, seed: int, min_products: int) -> Path:
    app = click.get_current_context().ensure_object(ScriptInfo).load_app()
    with app.app_context():
        report = export_catalog(
            session=db.session,
            settings=app.config["SETTINGS"],
            out=out,
            val_fraction=val_fraction,
            seed=seed,
            min_products=min_products,
        )
    for category, count in sorted(report.left_out.items()):
        click.echo(f"left out category {category!r}: {count} product(s), fewer than --min-products {min_products}")
    if not report.categories:
        raise click.ClickException(f"no category has {min_products} or more products with photos: nothing to train on")
    click.echo(
        f"catalog: {report.photos['train']} train and {report.photos['validation']} validation photos of"
        f" {report.products} products in {len(report.categories)} categories, split by product -> {report.manifest}"
    )
    return report.manifest


@click.command("evaluate")
@click.option(
    "--model", "model_path", required=True, help="A checkpoint, or a built-in name (efficientnet_lite0-imagenet)."
)
@click.option("--data", required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--split", default="validation", show_default=True, help="A split of the data, or `all` of them.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Default: the checkpoint's folder, or eval-NAME/."
)
@click.option(
    "--look",
    "looks",
    multiple=True,
    type=click.FloatRange(0, 1),
    help="A look weight to measure the served ranking at (repeatable; default 0, LOOK_DEFAULT and 1).",
)
@click.option(
    "--look-expansion",
    type=click.IntRange(0, 10),
    help="How many best hits expand the look's query, as LOOK_EXPANSION does in the service (default: its default).",
)
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0))
def evaluate_command(**options: Any) -> None:
    """Top-1/top-3, retrieval P@k and mAP@k (raw and L2) against the pretrained start, untrained and colour.

    The look: category P@10 and colour difference of the 10 nearest (and same-product P@1 and mAP@10 with a
    labels.csv) at each look weight."""
    # torch, imported when the command runs
    from ml import evaluate

    if not options["looks"]:
        options.pop("looks")
    if options["look_expansion"] is None:
        options.pop("look_expansion")
    try:
        result = evaluate.main(**options)
    except (DatasetError, WeightsUnavailable, FileNotFoundError, ValueError) as exc:
        _fail(exc)
    c = result["classification"]
    head = f": top-1 {c['top1']:.3f}, top-3 {c['top3']:.3f}" if c else ""
    click.echo(f"{result['photos']} photos of {result['split']}{head}")
    click.echo(f"{'features':<18} {'':<4} {'P@1':>6} {'P@10':>6} {'mAP@10':>7}")
    for name, variants in result["retrieval"].items():
        for variant, m in variants.items():
            click.echo(f"{name:<18} {variant:<4} {m['P@1']:6.3f} {m['P@10']:6.3f} {m['mAP@10']:7.3f}")
    look = result["look"]
    refs = look["colour dE references"]
    click.echo(
        f"look (among the {look['candidates']} nearest by the {look['candidates by']}, query expanded by"
        f" {look['expansion']} hits): colour dE of the 10 nearest; same category at random"
        f" {refs['random same category']:.1f}, colour oracle {refs['colour oracle']:.1f}"
    )
    rows = {f"look={w}": m for w, m in look["by_look"].items()} | look["baselines"]
    product = any("product P@1" in m for m in rows.values())
    click.echo(f"{'ranking':<18} {'P@10':>6} {'dE':>6}" + (f" {'prod P@1':>9} {'prod mAP@10':>11}" if product else ""))
    for name, m in rows.items():
        same = f" {m['product P@1']:9.3f} {m['product mAP@10']:11.3f}" if product else ""
        click.echo(f"{name:<18} {m['P@10']:6.3f} {m['colour dE']:6.1f}{same}")
    pictures = "eval.json, confusion.png, neighbours.png" if c else "eval.json, neighbours.png"
    click.echo(f"written: {pictures} in {result['out']}")


@click.command("embed")
@click.option("--model", "model_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="vectors.npy")
@click.option("--device", default="auto", show_default=True, type=DEVICES)
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=0))
def embed_command(model_path: Path, directory: Path, out: Path, device: str, batch_size: int, workers: int) -> None:
    """Embed every photo under DIRECTORY with the workers' Embedder; OUT gets the vectors, OUT.ids.json the paths."""
    # torch, imported when the command runs
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
    try:
        model = register_model(session=db.session, path=checkpoint)
    except RegistryError as exc:
        _fail(exc)
    click.echo(f"registered {model.version} ({len(model.class_names)} classes) from {model.path}")


@model_group.command("list")
@with_appcontext
def model_list() -> None:
    """Built-in and registered models as JSON; the one that embeds now is marked active."""
    # torch, imported when the command runs
    from ml.backbones import ARCHS, imagenet_available

    live = active_collection(session=db.session, settings=current_settings()).model_version
    rows: list[dict[str, Any]] = [
        {
            "version": builtin_name(arch),
            "active": builtin_name(arch) == live,
            "kind": "built-in, ImageNet-pretrained",
            "arch": arch,
            "available": imagenet_available(arch),
            "weights": spec.weights_origin,
        }
        for arch, spec in ARCHS.items()
    ]
    rows += [
        {
            "version": m.version,
            "active": m.version == live,
            "kind": "fine-tuned",
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
    """Make VERSION (built-in or registered) the model that embeds: reindex every photo with it, then switch."""
    try:
        check_activatable(session=db.session, version=version)
    except RegistryError as exc:
        _fail(exc)
    run_reindex(version, drop_wait)
    click.echo(f"active model: {version}")


@model_group.command("pull")
@click.argument("arch", type=click.Choice(ARCH_NAMES))
def model_pull(arch: str) -> None:
    """Fetch ARCH's ImageNet weights: resnet50 downloads torchvision's (needs a network); Lite ones are installed."""
    # torch, imported when the command runs
    from ml.backbones import lite_weights_path, pull_resnet50

    try:
        path = pull_resnet50() if arch == "resnet50" else lite_weights_path(arch)
    except WeightsUnavailable as exc:
        _fail(exc)
    click.echo(f"{builtin_name(arch)}: weights at {path}")
