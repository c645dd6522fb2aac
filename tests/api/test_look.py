"""look=<0..1> on the similar-items calls, on real photos with the default model: the colour comes first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.utils.api import upload
from tests.utils.apps import migrated_app
from tests.utils.datasets import photos_of
from tests.utils.settings import make_settings


def centre_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        w, h = rgb.size
        box = (w * 3 // 10, h * 3 // 10, w * 7 // 10, h * 7 // 10)
        return np.asarray(rgb.crop(box), dtype=np.float32).reshape(-1, 3)


def share(path: Path, channel: int) -> float:
    """The share of the centre's pixels where `channel` leads the other two by far: a plainly red or blue item."""
    pixels = centre_pixels(path)
    others = np.delete(pixels, channel, axis=1).max(axis=1)
    return float((pixels[:, channel] > others + 60).mean())


def reds_and_blues(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The two plainest red and the two plainest blue photos, by their centre."""
    return sorted(paths, key=lambda p: share(p, 0))[-2:], sorted(paths, key=lambda p: share(p, 2))[-2:]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Any]:
    with migrated_app(make_settings(tmp_path / "var", default_model="efficientnet_lite0-imagenet")) as app:
        yield app.test_client()


def test_look_one_ranks_the_same_colour_first(client: Any) -> None:
    reds, blues = reds_and_blues(photos_of("dress", 400, split="train"))
    ids = {}
    for n, path in enumerate([*reds, *blues]):
        response = upload(client, f"D{n}", path.read_bytes(), category="dress")
        assert response.status_code == 201, response.json
        ids[path] = response.json["id"]
    for query, same in ((reds[0], reds[1]), (reds[1], reds[0]), (blues[0], blues[1]), (blues[1], blues[0])):
        for call in (f"/api/v1/products/{ids[query]}/similar", f"/api/v1/images/{ids[query]}/similar"):
            if call.startswith("/api/v1/images"):
                image_id = client.get(f"/api/v1/products/{ids[query]}").json["images"][0]["id"]
                call = f"/api/v1/images/{image_id}/similar"
            body = client.get(f"{call}?look=1").json
            assert body["items"][0]["product"]["id"] == ids[same], (query.name, body["items"])
    searched = client.post("/api/v1/search?look=1", data={"image": (reds[0].open("rb"), "q.jpg")})
    ranked = [item["product"]["id"] for item in searched.json["items"]]
    assert ranked[:2] == [ids[reds[0]], ids[reds[1]]]  # the photo itself (it is in the catalog), then the other red


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan", "red"])
def test_bad_look_values_name_the_parameter(client: Any, value: str) -> None:
    path = photos_of("dress", 1)[0]
    product = upload(client, "D", path.read_bytes(), category="dress").json
    response = client.get(f"/api/v1/products/{product['id']}/similar?look={value}")
    assert response.status_code == 400 and response.json["field"] == "look", response.json
