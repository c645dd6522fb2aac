"""`lookalike import` of a folder-per-category tree: feed rows of one photo each, upserted by sku like a feed."""

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
    assert result.exit_code == 3, result.output  # some photos were skipped, as for a feed
    assert "8 rows: 5 created, 0 updated, 0 unchanged, 3 skipped" in result.output
    assert "     2  unreadable photo" in result.output and "     1  not inside a category folder" in result.output
    assert "(dress-broken): dress/broken.jpg:" in result.output and "hat/notes.txt:" in result.output
    assert '"indexed": 5' in result.output
    with app.app_context():
        products = sorted((p.category, p.sku, p.title) for p in db.session.query(Product))
        assert products[0] == ("dress", "dress-dress1", "dress dress1") and len(products) == 5
        assert [category for category, _, _ in products] == ["dress"] * 3 + ["hat"] * 2
        assert {i.status for i in db.session.query(ProductImage)} == {"indexed"}

    again = runner.invoke(args=["import", str(tmp_path / "catalog")])
    assert again.exit_code == 3 and "8 rows: 0 created, 0 updated, 5 unchanged, 3 skipped" in again.output

    (tmp_path / "catalog" / "hat" / "hat4.png").write_bytes(images.png(40, size=48))  # a new photo, same sku
    changed = runner.invoke(args=["import", "--dry-run", str(tmp_path / "catalog")])
    assert "0 would be created, 1 would be updated, 4 unchanged" in changed.output
    assert "photos: 1 would be added, 1 would be removed" in changed.output
    with app.app_context():
        assert db.session.query(ProductImage).count() == 5  # a dry run writes nothing

    missing = runner.invoke(args=["import", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    refused = runner.invoke(args=["import", "--photos", str(tmp_path), str(tmp_path / "catalog")])
    assert refused.exit_code == 2 and "--photos is for feeds" in refused.output


def test_a_folder_import_honours_duplicates_reject(make_app: Any, tmp_path: Path) -> None:
    app = make_app("reject", duplicates="reject")
    (tmp_path / "tree" / "dress").mkdir(parents=True)
    (tmp_path / "tree" / "hat").mkdir()
    (tmp_path / "tree" / "dress" / "a.png").write_bytes(images.png(1, size=48))
    (tmp_path / "tree" / "hat" / "b.png").write_bytes(images.png(1, size=48))  # the same file in another category
    result = cli_runner(app).invoke(args=["import", str(tmp_path / "tree")])
    assert result.exit_code == 3, result.output
    assert "2 rows: 1 created, 0 updated, 0 unchanged, 1 skipped" in result.output
    assert "photo 2 (hat-b): " in result.output and "is the same file as photo 1 of product 1" in result.output
    with app.app_context():
        assert [p.sku for p in db.session.query(Product)] == ["dress-a"]
