"""attr.<key>=<value> on the three similar-items calls: OR within a key, AND across keys, in the vector index;
undeclared keys answer 400 naming the declared ones (FILTER_ATTRIBUTES)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from backend.config import Settings
from tests.utils import images
from tests.utils.api import upload
from tests.utils.settings import AUTH, make_settings

COLOURS = {"A": "red", "B": "Blue", "C": "green", "D": "red"}
SIZES = {"A": ["m"], "B": ["m", "l"], "C": ["l"], "D": ["s"]}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "var", database_url=database_url, filter_attributes="colour, size")


def catalog(client: Any) -> dict[str, int]:
    ids = {}
    for n, sku in enumerate(["Q", *COLOURS]):
        attributes = {"colour": COLOURS.get(sku, "red"), "size": SIZES.get(sku, ["m"]), "material": "wool"}
        created = upload(client, sku, images.png(n), attributes=json.dumps(attributes))
        assert created.status_code == 201, created.json
        ids[sku] = created.json["id"]
    return ids


def skus(response: Any) -> list[str]:
    assert response.status_code == 200, response.json
    return sorted(item["product"]["sku"] for item in response.json["items"])


def test_attribute_filters_on_all_three_calls(client: Any) -> None:
    ids = catalog(client)
    image = client.get(f"/api/v1/products/{ids['Q']}").json["images"][0]["id"]
    calls = [
        lambda q: client.get(f"/api/v1/products/{ids['Q']}/similar", query_string=q),
        lambda q: client.get(f"/api/v1/images/{image}/similar", query_string=q),
        lambda q: client.post(
            "/api/v1/search",
            query_string=q,
            data={"image": (io.BytesIO(images.png(0)), "q.png")},
            content_type="multipart/form-data",
        ),
    ]
    for call in calls:
        everyone = {"A", "B", "C", "D"}
        assert set(skus(call([]))) >= everyone
        assert skus(call([("attr.colour", "red")])) in (["A", "D"], ["A", "D", "Q"])
        assert set(skus(call([("attr.colour", "red"), ("attr.colour", "BLUE")]))) - {"Q"} == {"A", "B", "D"}
        assert skus(call([("attr.colour", "red"), ("attr.colour", "blue"), ("attr.size", "l")])) == ["B"]
        assert skus(call([("attr.colour", "red"), ("attr.size", "xl")])) == []
        assert skus(call([("attr.colour", "green"), ("category", "dress")])) == ["C"]
        refused = call([("attr.material", "wool")])
        assert refused.status_code == 400 and refused.json["field"] == "attr.material"
        assert "declared ones: colour, size" in refused.json["message"]
        assert call([("attr.", "x")]).status_code == 400
        assert call([("attr.colour", " ")]).status_code == 400


def test_the_index_follows_changed_attributes(client: Any) -> None:
    ids = catalog(client)
    changed = client.patch(f"/api/v1/products/{ids['C']}", json={"attributes": {"colour": "red"}}, headers=AUTH)
    assert changed.status_code == 200
    query = [("attr.colour", "red")]
    assert skus(client.get(f"/api/v1/products/{ids['Q']}/similar", query_string=query)) == ["A", "C", "D"]
    # An attribute that is not a filter attribute changes nothing in the index, and filters nothing.
    assert skus(client.get(f"/api/v1/products/{ids['Q']}/similar", query_string=[("attr.size", "l")])) == ["B"]


def test_no_filter_attributes_declared(make_app: Any) -> None:
    client = make_app("plain").test_client()
    created = upload(client, "A", images.png(1), attributes=json.dumps({"colour": "red"}))
    refused = client.get(f"/api/v1/products/{created.json['id']}/similar?attr.colour=red")
    assert refused.status_code == 400 and "FILTER_ATTRIBUTES is empty" in refused.json["message"]


def test_bad_filter_attributes_setting() -> None:
    with pytest.raises(ValueError, match="FILTER_ATTRIBUTES"):
        Settings(_env_file=None, filter_attributes="colour,bad key")  # type: ignore[call-arg]
    assert Settings(_env_file=None, filter_attributes=" colour ,size,colour").attribute_keys == ("colour", "size")  # type: ignore[call-arg]
