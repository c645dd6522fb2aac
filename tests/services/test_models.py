"""The model registry, and what activation means: a reindex into the model's own collection, then a switch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from backend.core.extensions import db
from backend.services.models import RegistryError, check_activatable, list_models, register_model
from ml.checkpoint import save_checkpoint
from ml.model import build_model
from tests.utils import images
from tests.utils.api import upload
from tests.utils.apps import live_index
from tests.utils.cli import cli_runner


def make_checkpoint(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    model = build_model(3, "none", seed=seed)
    save_checkpoint(path, model, class_names=["a", "b", "c"], image_size=64, weights="none", metrics={"top1": 0.5})
    return path


def test_register_list_and_what_can_be_activated(app: Any, tmp_path: Path) -> None:
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
        assert check_activatable(session=db.session, version=two.version) is two
        with pytest.raises(RegistryError, match="unknown model version"):
            check_activatable(session=db.session, version="nope")
        second.unlink()
        with pytest.raises(RegistryError, match=r"checkpoint of .* is missing"):
            check_activatable(session=db.session, version=two.version)
        assert [m.active for m in list_models(session=db.session)] == [False, False]


def test_activation_reindexes_into_a_new_collection_and_switches(client: Any, app: Any, tmp_path: Path) -> None:
    old = upload(client, "OLD", images.png(1)).json
    upload(client, "OLD2", images.png(2))
    before = client.get("/api/v1/stats").json["index"]["collection"]
    runner = cli_runner(app)
    assert runner.invoke(args=["model", "register", str(make_checkpoint(tmp_path / "m.pt", 4))]).exit_code == 0
    with app.app_context():
        version = list_models(session=db.session)[0].version
    result = runner.invoke(args=["model", "activate", version, "--drop-wait", "5"])
    assert result.exit_code == 0, result.output
    assert f"active model: {version}" in result.output and '"embedded": 2' in result.output

    stats = client.get("/api/v1/stats").json
    assert stats["model"] == {**stats["model"], "version": version, "trained": True, "note": None}
    assert stats["index"]["collection"] != before and version in stats["index"]["collection"]
    assert stats["index"]["points"] == 2 and stats["images"]["indexed"] == 2
    # The old products were embedded again with the new model: they answer at once.
    body = client.get(f"/api/v1/products/{old['id']}/similar").json
    assert body["model_version"] == version and [i["product"]["sku"] for i in body["items"]] == ["OLD2"]
    new = upload(client, "NEW", images.png(3)).json
    assert new["images"][0]["model_version"] == version
    assert live_index(app).count() == 3
    listing = runner.invoke(args=["model", "list"])
    assert f'"version": "{version}"' in listing.output and '"active": true' in listing.output
    assert runner.invoke(args=["model", "activate", "nope"]).exit_code != 0


def test_one_reindex_at_a_time_for_the_pages_and_both_commands(client: Any, app: Any) -> None:
    """A build that moves blocks `lookalike reindex` and `lookalike model activate` (exit 1, nothing built), as it
    blocks the models page; one without progress for STALLED_AFTER is taken for dead and blocks nothing."""
    from datetime import UTC, datetime

    from backend.db.models import CollectionState, IndexCollection
    from backend.services.models import STALLED_AFTER

    upload(client, "ONE", images.png(1))
    before = client.get("/api/v1/stats").json["index"]["collection"]
    with app.app_context():
        build = IndexCollection(
            name="lookalike-other-build", model_version="untrained-9", state=CollectionState.building, photos_total=10
        )
        build.progress_at = datetime.now(UTC)
        db.session.add(build)
        db.session.commit()
    runner = cli_runner(app)
    for args in (["reindex"], ["model", "activate", "efficientnet_lite0-imagenet"]):
        refused = runner.invoke(args=args)
        assert refused.exit_code == 1, refused.output
        assert "a reindex is running already (to untrained-9: 0 of 10 photos)" in refused.output
    assert client.get("/api/v1/stats").json["index"]["collection"] == before
    with app.app_context():
        stalled = db.session.get(IndexCollection, "lookalike-other-build")
        assert stalled is not None
        stalled.progress_at = datetime.now(UTC) - STALLED_AFTER * 1.1
        db.session.commit()
    done = runner.invoke(args=["reindex", "--drop-wait", "5"])
    assert done.exit_code == 0, done.output
    assert client.get("/api/v1/stats").json["index"]["collection"] != before
