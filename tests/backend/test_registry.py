"""The model registry, and what activation means for embedding and queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from backend.extensions import db
from backend.registry import RegistryError, activate_model, list_models, register_model
from ml.checkpoint import save_checkpoint
from ml.model import build_model
from tests.utils import images
from tests.utils.api import upload


def make_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model(3, "none", seed=seed)
    save_checkpoint(path, model, class_names=["a", "b", "c"], image_size=64, weights="none", metrics={"top1": 0.5})
    return path


def test_register_list_activate(app: Any, tmp_path: Path) -> None:
    first = make_checkpoint(tmp_path / "one.pt", 1)
    second = make_checkpoint(tmp_path / "two.pt", 2)
    with app.app_context():
        one = register_model(session=db.session, path=first)
        two = register_model(session=db.session, path=second)
        assert one.version != two.version and one.metrics == {"top1": 0.5}
        with pytest.raises(RegistryError, match="already registered"):
            register_model(session=db.session, path=first)
        with pytest.raises(RegistryError, match="not found"):
            register_model(session=db.session, path=tmp_path / "missing.pt")
        (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(RegistryError, match="not a readable checkpoint"):
            register_model(session=db.session, path=tmp_path / "junk.pt")
        activate_model(session=db.session, version=one.version)
        activate_model(session=db.session, version=two.version)
        assert [(m.version, m.active) for m in list_models(session=db.session)] == [
            (one.version, False),
            (two.version, True),
        ]
        with pytest.raises(RegistryError, match="unknown model version"):
            activate_model(session=db.session, version="nope")


def test_activation_switches_embedding_and_never_mixes_models(client: Any, app: Any, tmp_path: Path) -> None:
    old = upload(client, "OLD", images.png(1)).json
    upload(client, "OLD2", images.png(2))
    runner = app.test_cli_runner()
    assert runner.invoke(args=["model", "register", str(make_checkpoint(tmp_path / "m.pt", 4))]).exit_code == 0
    with app.app_context():
        version = list_models(session=db.session)[0].version
    result = runner.invoke(args=["model", "activate", version])
    assert result.exit_code == 0 and "not searched until" in result.output

    new = upload(client, "NEW", images.png(3)).json
    assert new["images"][0]["model_version"] == version
    stats = client.get("/api/v1/stats").json
    assert stats["model"] == {**stats["model"], "version": version, "trained": True, "note": None}
    # The new product sees no point of the old model; the old one is not indexed by the active model.
    body = client.get(f"/api/v1/products/{new['id']}/similar").json
    assert body["items"] == [] and body["model_version"] == version
    assert client.get(f"/api/v1/products/{old['id']}/similar").status_code == 409
    listing = runner.invoke(args=["model", "list"])
    assert f'"version": "{version}"' in listing.output and '"active": true' in listing.output
