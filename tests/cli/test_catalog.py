"""`lookalike import`: a folder-per-category tree, a summary of what was skipped and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from backend.core.extensions import db
from backend.db.models import Product, ProductImage
from tests.utils import images
from tests.utils.cli import cli_runner


def make_tree(root: Path) -> None:
    for category, seeds in {"dress": [1, 2, 3], "hat": [4, 5]}.items():
        (root / category).mkdir(parents=True)
        for seed in seeds:
            (root / category / f"{category}{seed}.png").write_bytes(images.png(seed, size=48))
    (root / "hat" / "notes.txt").write_text("not a photo")
    (root / "dress" / "broken.jpg").write_bytes(images.truncated_jpeg())
    (root / "stray.png").write_bytes(images.png(9))


def test_import_tree(app: Any, tmp_path: Path) -> None:
    make_tree(tmp_path / "catalog")
    runner = cli_runner(app)
    result = runner.invoke(args=["import", str(tmp_path / "catalog")])
    assert result.exit_code == 0, result.output
    assert "imported 5 products" in result.output
    assert "skipped 3:" in result.output
    assert "unsupported_media_type" in result.output and "invalid_image" in result.output
    assert "not inside a category folder" in result.output
    assert '"indexed": 5' in result.output
    with app.app_context():
        categories = sorted(p.category for p in db.session.query(Product))
        assert categories == ["dress"] * 3 + ["hat"] * 2
        assert {i.status for i in db.session.query(ProductImage)} == {"indexed"}

    again = runner.invoke(args=["import", str(tmp_path / "catalog")])
    assert again.exit_code == 0 and "imported 0 products" in again.output
    assert "already imported (same sku)" in again.output

    missing = runner.invoke(args=["import", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
