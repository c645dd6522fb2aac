"""look=<0..1> on the similar-items calls, on real photos with the default model: the colour comes first."""

from __future__ import annotations

import io
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


@pytest.fixture
def dresses(client: Any) -> dict[str, int]:
    """Two plainly red and two plainly blue dresses, and four others, by product id."""
    reds, blues = reds_and_blues(photos_of("dress", 400, split="train"))
    others = photos_of("dress", 4)
    named = {"red0": reds[0], "red1": reds[1], "blue0": blues[0], "blue1": blues[1]}
    named |= {f"other{n}": p for n, p in enumerate(others)}
    return {
        name: upload(client, name.upper(), path.read_bytes(), category="dress").json["id"]
        for name, path in named.items()
    }


def ranked(client: Any, product_id: int, query: str = "") -> list[int]:
    response = client.get(f"/api/v1/products/{product_id}/similar?limit=7&{query}")
    assert response.status_code == 200, response.json
    return [item["product"]["id"] for item in response.json["items"]]


def looks_of(client: Any, product_ids: list[int]) -> dict[int, np.ndarray]:
    """Each product's stored look vector (one photo each)."""
    from tests.utils.apps import live_index

    app = client.application
    image_ids = {client.get(f"/api/v1/products/{p}").json["images"][0]["id"]: p for p in product_ids}
    stored = live_index(app).named_vectors(list(image_ids), "look")
    return {image_ids[i]: np.asarray(v) for i, v in stored.items()}


def test_like_and_unlike_steer_the_ranking(client: Any, dresses: dict[str, int]) -> None:
    query = dresses["red0"]
    plain = ranked(client, query, "look=0")
    liked = plain[-1]
    towards = ranked(client, query, f"like={liked}")
    assert towards[0] == liked and towards != plain  # more like the liked one: it leads, its look-alikes follow
    looks = looks_of(client, [query, *plain])
    unliked = plain[0]
    # The product more like the unliked one than like the query, by far the most: it must sink to the end.
    gap = {p: np.linalg.norm(looks[p] - looks[query]) - np.linalg.norm(looks[p] - looks[unliked]) for p in plain}
    sinker = max((p for p in plain if p != unliked), key=gap.__getitem__)
    away = ranked(client, query, f"unlike={unliked}")
    assert unliked not in away  # an unliked product is left out
    assert away.index(sinker) >= plain.index(sinker) - 1 and away[-1] == sinker, (gap, plain, away)
    both = ranked(client, query, f"like={dresses['red1']}&unlike={dresses['blue0']}&unlike={dresses['blue1']}")
    assert both[0] == dresses["red1"] and dresses["blue0"] not in both and dresses["blue1"] not in both


def test_diverse_changes_the_order_but_not_the_first(client: Any, dresses: dict[str, int]) -> None:
    plain = ranked(client, dresses["red0"], "look=0")
    varied = ranked(client, dresses["red0"], "diverse=1")
    assert varied[0] == plain[0] and sorted(varied) == sorted(plain) and varied != plain
    assert ranked(client, dresses["red0"], "diverse=0&look=0") == plain


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ("like=999", 404, "like"),
        ("unlike=999", 404, "unlike"),
        ("like=0", 400, "like"),
        ("like=x", 400, "like"),
        ("like={red1}&unlike={red1}", 400, "unlike"),
        ("diverse=1.5", 400, "diverse"),
        ("diverse=-1", 400, "diverse"),
        ("look=0.5&like={red1}", 400, "look"),
        ("like={red1}&like={red1}&like=1&like=2&like=3&like=4&like=5&like=6&like=7&like=8&like=9", 400, "like"),
    ],
)
def test_bad_steering_names_the_parameter(
    client: Any, dresses: dict[str, int], query: str, status: int, field: str
) -> None:
    response = client.get(f"/api/v1/products/{dresses['red0']}/similar?{query.format(**dresses)}")
    assert response.status_code == status and response.json["field"] == field, response.json


def test_liking_a_product_with_no_indexed_photo_is_a_conflict(client: Any, dresses: dict[str, int]) -> None:
    from backend.core.extensions import db
    from backend.db.models import ImageStatus, ProductImage

    with client.application.app_context():
        image = db.session.query(ProductImage).filter_by(product_id=dresses["blue0"]).one()
        image.status = ImageStatus.pending
        db.session.commit()
    response = client.get(f"/api/v1/products/{dresses['red0']}/similar?like={dresses['blue0']}")
    assert response.status_code == 409 and response.json["field"] == "like", response.json


def two_items_side_by_side(left: Path, right: Path) -> bytes:
    """One photo: `left` in its left half, `right` in its right half (a shopper's photo of two items)."""
    with Image.open(left) as a, Image.open(right) as b:
        a, b = a.convert("RGB").resize((240, 320)), b.convert("RGB").resize((240, 320))
    both = Image.new("RGB", (480, 320))
    both.paste(a, (0, 0))
    both.paste(b, (240, 0))
    buffer = io.BytesIO()
    both.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_a_box_searches_that_part_of_the_photo(client: Any, dresses: dict[str, int]) -> None:
    shoes = photos_of("shoes", 1)[0]
    shoe = upload(client, "SHOE", shoes.read_bytes(), category="shoes").json["id"]
    reds, _ = reds_and_blues(photos_of("dress", 400, split="train"))
    photo = two_items_side_by_side(reds[0], shoes)

    def search(box: str) -> Any:
        return client.post(f"/api/v1/search?box={box}&look=0", data={"image": (io.BytesIO(photo), "q.jpg")})

    left = search("0,0,0.5,1").json["items"]
    right = search("0.5,0,0.5,1").json["items"]
    assert left[0]["product"]["id"] == dresses["red0"]
    assert right[0]["product"]["id"] == shoe


@pytest.mark.parametrize("box", ["0.5,0.5,0.6,0.2", "0,0,0,0.5", "1,2,3", "a,b,c,d", "-0.1,0,0.5,0.5", "0,0,0.001,0.5"])
def test_bad_boxes_name_box(client: Any, box: str) -> None:
    photo = photos_of("dress", 1)[0].read_bytes()
    response = client.post(f"/api/v1/search?box={box}", data={"image": (io.BytesIO(photo), "q.jpg")})
    assert response.status_code == 400 and response.json["field"] == "box", response.json
