"""Built-in ImageNet models are model versions: listed, the default of a new install, activated by a reindex."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from backend.core.extensions import db
from backend.db.models import Product, ProductImage
from backend.serving import embedders
from backend.serving.active import active_collection, default_model_note, default_version
from backend.serving.embedders import UnknownModel, configured_default
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index, migrated_app
from tests.utils.cli import cli_runner
from tests.utils.datasets import photos_of
from tests.utils.settings import make_settings


def test_a_new_install_defaults_to_the_pretrained_lite0(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "var", default_model="efficientnet_lite0-imagenet")
    with migrated_app(settings) as app, app.app_context():
        assert default_version(session=db.session, settings=settings) == "efficientnet_lite0-imagenet"
        client = app.test_client()
        stats = client.get("/api/v1/stats").json
        assert stats["model"] == {
            **stats["model"],
            "version": "efficientnet_lite0-imagenet",
            "arch": "efficientnet_lite0",
            "origin": "imagenet-pretrained",
            "pretrained": True,
            "fine_tuned": False,
            "normalize": "l2",
            "image_size": 224,
            "note": None,
        }
        assert default_model_note(session=db.session, settings=settings) is None


def test_an_unknown_default_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="efficientnet_lite0-imagenet, efficientnet_lite2-imagenet"):
        configured_default(make_settings(tmp_path, default_model="vgg16-imagenet"))


def test_model_list_shows_the_built_in_models_and_the_live_one(app: Any) -> None:
    result = cli_runner(app).invoke(args=["model", "list"])
    assert result.exit_code == 0, result.output
    rows = {row["version"]: row for row in json.loads(result.output)}
    lite0 = rows["efficientnet_lite0-imagenet"]
    assert lite0["available"] is True and lite0["kind"] == "built-in, ImageNet-pretrained" and not lite0["active"]
    assert rows["efficientnet_lite2-imagenet"]["available"] is True
    assert "resnet50-imagenet" in rows  # available only where torchvision's cache holds its weights


def test_an_untrained_install_moves_to_the_pretrained_default_by_reindex(
    app: Any, client: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live collection built by the untrained network (an older install) is named in the log with the command
    that moves it; `model activate` reindexes every photo with the built-in model, then switches."""
    shoes, pants = photos_of("shoes", 2), photos_of("pants", 1)
    for i, path in enumerate([*shoes, *pants]):
        category = "shoes" if i < len(shoes) else "pants"
        assert upload(client, f"P{i}", path.read_bytes(), category=category).status_code == 201
    settings = app.config["SETTINGS"].model_copy(update={"default_model": "efficientnet_lite0-imagenet"})
    with app.app_context():
        old = active_collection(session=db.session, settings=settings)
        assert old.model_version.startswith("untrained-")
        note = default_model_note(session=db.session, settings=settings)
    assert note is not None and "lookalike model activate efficientnet_lite0-imagenet" in note

    runner = cli_runner(app)
    monkeypatch.setattr(embedders, "_embedders", {})  # load it here, so that its log line is seen
    with caplog.at_level(logging.INFO, logger="lookalike"):
        result = runner.invoke(args=["model", "activate", "efficientnet_lite0-imagenet", "--drop-wait", "5"])
    assert result.exit_code == 0, result.output
    assert '"embedded": 3' in result.output and "active model: efficientnet_lite0-imagenet" in result.output
    assert "efficientnet_lite0, imagenet-pretrained, l2 vectors" in caplog.text
    stats = client.get("/api/v1/stats").json
    assert stats["model"]["version"] == "efficientnet_lite0-imagenet" and stats["model"]["pretrained"] is True
    assert stats["index"]["collection"] != old.name and stats["index"]["points"] == 3
    with app.app_context():
        assert {i.model_version for i in db.session.query(ProductImage)} == {"efficientnet_lite0-imagenet"}
        shoe = db.session.query(Product).filter_by(sku="P0").one()
    body = client.get(f"/api/v1/products/{shoe.id}/similar").json
    assert body["model_version"] == "efficientnet_lite0-imagenet"
    assert next(item["product"]["sku"] for item in body["items"]) == "P1"  # the other shoe, before the pants
    new = upload(client, "NEW", images.png(3)).json
    assert new["images"][0]["model_version"] == "efficientnet_lite0-imagenet"
    assert live_index(app).count() == 4
    listed = {r["version"]: r for r in json.loads(runner.invoke(args=["model", "list"]).output)}
    assert listed["efficientnet_lite0-imagenet"]["active"] is True
    with app.app_context():
        assert default_model_note(session=db.session, settings=settings) is None
        other = settings.model_copy(update={"default_model": "efficientnet_lite2-imagenet"})
        note = default_model_note(session=db.session, settings=other)
    assert note is not None and "built by efficientnet_lite0-imagenet" in note
    assert "lookalike model activate efficientnet_lite2-imagenet" in note


def test_activating_a_built_in_model_whose_weights_are_missing_stops(
    app: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-cache"))
    result = cli_runner(app).invoke(args=["model", "activate", "resnet50-imagenet"])
    assert result.exit_code == 1 and "lookalike model pull resnet50" in result.output


def test_train_from_catalog_splits_by_product(app: Any, client: Any, tmp_path: Path) -> None:
    """Every product's photos land on one side; a category with too few products is left out with a message."""
    for i in range(6):
        two_photos = [images.png(10 * i + k, size=48) for k in (1, 2)]
        assert upload(client, f"D{i}", *two_photos, category="dress").status_code == 201
    for i in range(6):
        assert upload(client, f"H{i}", images.png(100 + i, size=48), category="hat").status_code == 201
    assert upload(client, "S0", images.png(200, size=48), category="scarf").status_code == 201
    out = tmp_path / "run"
    args = ["train", "--from-catalog", "--out", str(out), "--arch", "efficientnet_lite0", "--weights", "none",
            "--recipe", "cpu", "--image-size", "64", "--epochs-head", "1", "--epochs-finetune", "1", "--workers", "0",
            "--val-fraction", "0.34", "--views", "1"]  # fmt: skip
    result = cli_runner(app).invoke(args=args)
    assert result.exit_code == 0, result.output
    assert "left out category 'scarf': 1 product(s), fewer than --min-products 5" in result.output
    rows = (out / "catalog.csv").read_text().splitlines()[1:]
    with app.app_context():
        by_path = {
            str((Path(app.config["SETTINGS"].media_root) / img.stored_name).resolve()): img.product.sku
            for img in db.session.query(ProductImage)
        }
    assert len(rows) == 18 and len(by_path) == 19  # the scarf's photo is not in the manifest
    sides: dict[str, set[str]] = {}
    for row in rows:
        path, category, split, product = row.split(",")
        assert product.isdigit()
        assert category in {"dress", "hat"}
        sides.setdefault(by_path[path], set()).add(split)
    assert all(len(s) == 1 for s in sides.values())  # no product on both sides
    assert {split for s in sides.values() for split in s} == {"train", "validation"}
    assert sum("validation" in s for sku, s in sides.items() if sku.startswith("D")) == 2  # 0.34 of 6 products
    assert (out / "best.pt").is_file() and (out / "curves.png").is_file()
    assert Image.open(out / "curves.png").size[0] > 500


def test_model_pull(app: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lite weights are installed (pull names the file); resnet50's download fails cleanly with no network."""
    import urllib.error

    import torch

    runner = cli_runner(app)
    lite = runner.invoke(args=["model", "pull", "efficientnet_lite0"])
    assert lite.exit_code == 0 and "efficientnet-lite0-57934424.pth" in lite.output

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network here")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    failed = runner.invoke(args=["model", "pull", "resnet50"])
    assert failed.exit_code == 1 and "could not download" in failed.output and "no network here" in failed.output
    assert runner.invoke(args=["model", "pull", "vgg16"]).exit_code == 2
