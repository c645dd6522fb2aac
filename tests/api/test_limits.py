"""Abuse limits: searches and failed authentications per address answer 429 with Retry-After; /search
takes one photo's worth of body."""

from __future__ import annotations

import io
from typing import Any

import redis

from tests.utils import images
from tests.utils.api import upload
from tests.utils.settings import AUTH, REDIS_URL


def search(client: Any, data: bytes) -> Any:
    form = {"image": (io.BytesIO(data), "p.png")}
    return client.post("/api/v1/search", data=form, content_type="multipart/form-data")


def test_searches_past_the_limit_are_429_with_retry_after(make_app: Any) -> None:
    client = make_app(rate_limit_search="3/minute").test_client()
    answers = [search(client, images.png(1)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json["error"] == "too_many_requests" and 0 < int(refused.headers["Retry-After"]) <= 60
    other = client.post(
        "/api/v1/search",
        data={"image": (io.BytesIO(images.png(1)), "p.png")},
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": "127.0.0.9"},
    )
    assert other.status_code == 200  # per address: another client is not held back
    assert client.get("/api/v1/products").status_code == 200  # other routes are not limited


def test_failed_authentication_is_limited_then_429_even_with_the_right_token(make_app: Any) -> None:
    client = make_app(rate_limit_auth_failures="3/minute").test_client()
    wrong = {"Authorization": "Bearer wrong-token-0000000000"}
    statuses = [upload(client, f"W{i}", images.png(i), headers=wrong).status_code for i in range(3)]
    assert statuses == [401, 401, 401]
    blocked = upload(client, "RIGHT", images.png(9))  # the right token, from the same address, now waits
    assert blocked.status_code == 429 and blocked.json["error"] == "too_many_requests"
    assert int(blocked.headers["Retry-After"]) > 0
    elsewhere = client.post(
        "/api/v1/products",
        data={"sku": "ELSE", "title": "t", "category": "dress", "images": [(io.BytesIO(images.png(3)), "a.png")]},
        headers=AUTH,
        content_type="multipart/form-data",
        environ_base={"REMOTE_ADDR": "127.0.0.7"},
    )
    assert elsewhere.status_code == 201


def test_limits_can_be_switched_off(make_app: Any) -> None:
    client = make_app(rate_limit_search="1/minute", rate_limits_enabled=False).test_client()
    assert [search(client, images.png(1)).status_code for _ in range(3)] == [200, 200, 200]


def test_search_refuses_a_body_larger_than_one_photo(make_app: Any) -> None:
    client = make_app(max_upload_mb=0.05).test_client()  # 51 KiB photos: /search takes 51 + 64 KiB
    big = b"\x89PNG\r\n\x1a\n" + bytes(200 * 1024)
    response = search(client, big)
    assert response.status_code == 413 and response.json["error"] == "request_too_large"
    small = search(client, images.png(1, size=32))
    assert small.status_code == 200


def test_with_a_broker_the_counts_live_in_redis(make_app: Any) -> None:
    """The full stack's API processes share one count per address: it is kept in Redis, not in a process."""
    connection = redis.Redis.from_url(REDIS_URL)
    pattern = "*lookalike-limits/*/similar.search_by_photo/*"
    for key in connection.scan_iter(pattern):
        connection.delete(key)
    client = make_app(redis_url=REDIS_URL, rate_limit_search="2/minute").test_client()
    try:
        assert [search(client, images.png(1)).status_code for _ in range(3)] == [200, 200, 429]
        keys = list(connection.scan_iter(pattern))
        assert len(keys) == 1 and int(connection.get(keys[0]) or 0) >= 2
        assert 0 < connection.ttl(keys[0]) <= 60  # the window
    finally:
        for key in connection.scan_iter(pattern):
            connection.delete(key)


def test_behind_trusted_proxies_the_limits_key_on_the_forwarded_client(make_app: Any) -> None:
    """Every request arrives from the proxy's address; with TRUSTED_PROXIES=1 its X-Forwarded-For names the client."""
    wrong = {"Authorization": "Bearer wrong-token-0000000000"}

    def failures(client: Any, forwarded_for: str) -> list[int]:
        headers = {**wrong, "X-Forwarded-For": forwarded_for}
        return [
            client.get("/api/v1/imports/1", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.1"}).status_code
            for _ in range(3)
        ]

    behind = make_app(rate_limit_auth_failures="2/minute", trusted_proxies=1).test_client()
    assert failures(behind, "203.0.113.5") == [401, 401, 429]
    assert failures(behind, "203.0.113.6")[0] == 401  # another client behind the same proxy is not held back
    direct = make_app(rate_limit_auth_failures="2/minute").test_client()  # the default: headers ignored
    assert failures(direct, "203.0.113.5") == [401, 401, 429]
    assert failures(direct, "203.0.113.6")[0] == 429  # one address: the proxy's
