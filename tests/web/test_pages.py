"""The pages through the test client, on SQLite and PostgreSQL: the same checks as the API, CSRF on every
form, the admin's session, thumbnails, and nothing stored when something is refused."""

from __future__ import annotations

import io
import re
import time
from typing import Any

import numpy as np
from PIL import Image

from backend.core.extensions import db
from backend.db.models import CollectionState, FailureKind, ImageStatus, IndexCollection, Product, ProductImage
from backend.db.photos import fail_photos
from backend.domain.photos import THUMB_SIDE, MediaStorage
from tests.utils import images
from tests.utils.api import upload
from tests.utils.pages import cards, csrf_token, errors, log_in, post_form
from tests.utils.settings import TOKEN


def product_form(sku: str, *photos: tuple[bytes, str], **fields: str) -> dict[str, Any]:
    form: dict[str, Any] = {"sku": sku, "title": f"Product {sku}", "category": "dress", **fields}
    form["images"] = [(io.BytesIO(data), name) for data, name in photos]
    return form


def stored_files(app: Any) -> list[str]:
    return sorted(str(p) for p in app.config["SETTINGS"].media_root.rglob("*") if p.is_file())


def test_catalog_filters_and_pages(client: Any) -> None:
    for i in range(26):
        brand = "acme" if i % 2 else "zeta"
        assert (
            upload(
                client, f"P{i}", images.png(i, 32), brand=brand, price=str(10 + i), category="hat" if i < 3 else "dress"
            ).status_code
            == 201
        )
    first = client.get("/")
    assert first.status_code == 200 and "26 products" in first.get_data(as_text=True)
    assert cards(first) == list(range(1, 25))  # 24 a page
    assert cards(client.get("/?page=2")) == [25, 26]
    assert cards(client.get("/?category=hat")) == [1, 2, 3]
    assert cards(client.get("/?category=hat&brand=acme")) == [2]
    assert cards(client.get("/?price_min=30&price_max=31.5")) == [21, 22]
    assert cards(client.get("/?category=&brand=&price_min=")) == list(range(1, 25))  # "any" is no filter
    bad = client.get("/?price_min=cheap")
    assert bad.status_code == 400 and "price_min" in bad.get_data(as_text=True) and bad.mimetype == "text/html"
    # Grids send thumbnails, never the photos.
    body = first.get_data(as_text=True)
    assert body.count('src="/media/thumbs/') == 24 and 'src="/media/' not in body.replace('src="/media/thumbs/', "")


def test_product_page_shows_look_alikes_and_more(client: Any) -> None:
    for i in range(15):
        upload(client, f"L{i}", images.png(i, 32), category="hat" if i % 3 == 0 else "dress")
    page = client.get("/products/2")
    shown = cards(page)
    assert len(shown) == 12 and 2 not in shown  # the product itself is left out
    assert re.search(r'href="(/products/2\?limit=24)"', page.get_data(as_text=True))
    assert len(cards(client.get("/products/2?limit=24"))) == 14
    only_hats = cards(client.get("/products/2?category=hat"))
    assert sorted(only_hats) == [1, 4, 7, 10, 13]
    assert client.get("/products/999").status_code == 404
    refused = client.get("/products/2?price_min=5&price_max=1")
    assert refused.status_code == 400 and "price_min" in refused.get_data(as_text=True)


def test_a_product_waiting_for_its_photos_says_so(make_app: Any) -> None:
    app = make_app(redis_url="redis://127.0.0.1:1/0")  # a broker nobody answers: the photo stays pending
    client = app.test_client()
    with app.app_context():
        product = Product(sku="W1", title="Waiting", category="dress", attributes={})
        product.images.append(
            ProductImage(
                stored_name="ab/" + "a" * 32 + ".png",
                sha256="0" * 64,
                width=1,
                height=1,
                content_type="image/png",
                size_bytes=1,
                status=ImageStatus.pending,
            )
        )
        db.session.add(product)
        db.session.commit()
    page = client.get("/products/1").get_data(as_text=True)
    assert "Look-alikes appear once a photo is indexed: 1 pending" in page


def test_search_page_finds_look_alikes_and_stores_nothing(client: Any, app: Any) -> None:
    for i in range(3):
        upload(client, f"S{i}", images.png(i, 32))
    before = stored_files(app)
    found = post_form(client, "/search", {"image": (io.BytesIO(images.png(1, 32)), "q.png")})
    assert found.status_code == 200 and cards(found)[0] == 2  # the same pixels come first
    assert 'src="data:image/jpeg;base64,' in found.get_data(as_text=True)
    refused = post_form(client, "/search", {"image": (io.BytesIO(b"plain text"), "q.png")})
    assert refused.status_code == 415  # as the API answers
    assert errors(refused)["image"] == ["q.png: not a JPEG, PNG, GIF or WebP image by its content"]
    missing = post_form(client, "/search", {})
    assert missing.status_code == 400 and errors(missing)["image"] == ["images: at least one photo is required"]
    assert stored_files(app) == before


def test_search_page_has_the_apis_limits(make_app: Any) -> None:
    client = make_app(rate_limit_search="2/minute", max_upload_mb=1).test_client()
    token = csrf_token(client, "/search")
    big = client.post(
        "/search",
        data={"csrf_token": token, "image": (io.BytesIO(b"\xff" * 3_000_000), "big.jpg")},
        content_type="multipart/form-data",
    )
    assert big.status_code == 413 and big.mimetype == "text/html"
    statuses = [
        client.post(
            "/search",
            data={"csrf_token": token, "image": (io.BytesIO(images.png(1)), "p.png")},
            content_type="multipart/form-data",
        ).status_code
        for _ in range(3)
    ]
    assert statuses[-1] == 429 and "Too many requests" in client.post("/search", data={"csrf_token": token}).get_data(
        as_text=True
    )


def test_admin_pages_need_a_login(client: Any) -> None:
    upload(client, "KEEP", images.png(1, 32))
    for path in (
        "/admin/",
        "/admin/status",
        "/admin/models",
        "/admin/products",
        "/admin/products/new",
        "/admin/products/1/edit",
    ):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/admin/login?next="), path
    deleted = post_form(client, "/admin/products/1/delete", {}, token_from="/admin/login")
    assert deleted.status_code == 302 and "/admin/login" in deleted.headers["Location"]
    assert client.get("/api/v1/products/1").status_code == 200


def test_login_makes_a_safe_session_and_a_wrong_token_says_nothing_more(make_app: Any) -> None:
    client = make_app(rate_limit_auth_failures="3/minute").test_client()
    answers = [log_in(client, token) for token in ("wrong-token-000000000", TOKEN[:-1])]
    assert [a.status_code for a in answers] == [401, 401]
    assert errors(answers[0]) == errors(answers[1]) == {"token": ["That is not the admin token."]}
    log_in(client, "third-wrong-token-0000")
    blocked = log_in(client, TOKEN)  # the right token waits too, as on the API
    assert blocked.status_code == 429 and 0 < int(blocked.headers["Retry-After"]) <= 60

    client = make_app("other").test_client()
    answer = log_in(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/status"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert client.get("/admin/status").status_code == 200
    # Only paths of this site after logging in.
    client.get("/")  # a fresh page
    bounced = client.post("/admin/login?next=//evil.example/", data={"token": TOKEN, "csrf_token": csrf_token(client)})
    assert bounced.headers["Location"] == "/admin/status"
    # A tab or a newline: browsers drop them (`/\t/evil.example` is `//evil.example`); a newline was a 500.
    for sneaky in ("/%09/evil.example", "/%0a/evil.example", "/admin%0d%0aSet-Cookie:x=1", "/%E2%80%8B/evil"):
        client.get("/")
        answer = client.post(f"/admin/login?next={sneaky}", data={"token": TOKEN, "csrf_token": csrf_token(client)})
        assert answer.status_code == 302 and answer.headers["Location"] == "/admin/status", sneaky
    client.get("/")
    kept = client.post("/admin/login?next=/admin/models", data={"token": TOKEN, "csrf_token": csrf_token(client)})
    assert kept.headers["Location"] == "/admin/models"
    # Log out ends the session.
    assert post_form(client, "/admin/logout", {}, token_from="/admin/status").status_code == 302
    assert client.get("/admin/status").status_code == 302


def test_logging_out_ends_the_session_for_a_copy_of_its_cookie_too(make_app: Any) -> None:
    app = make_app()
    mine, thief = app.test_client(), app.test_client()
    upload(mine, "KEEP", images.png(1, 32))
    log_in(mine)
    cookie = mine.get_cookie("lookalike_session")
    assert cookie is not None
    thief.set_cookie("lookalike_session", cookie.value)  # copied before the logout
    assert thief.get("/admin/status").status_code == 200
    csrf = csrf_token(thief, "/admin/products")
    assert post_form(mine, "/admin/logout", {}, token_from="/admin/status").status_code == 302
    assert thief.get("/admin/status").status_code == 302  # back to the login
    deleted = thief.post("/admin/products/1/delete", data={"csrf_token": csrf}, content_type="multipart/form-data")
    assert deleted.status_code == 302 and "/admin/login" in deleted.headers["Location"]
    assert mine.get("/api/v1/products/1").status_code == 200  # still there


def test_production_session_cookie_is_secure(make_app: Any) -> None:
    client = make_app(environment="production", secret_key="a-long-random-secret-8d7f6e5c4b3a").test_client()
    assert "Secure" in log_in(client).headers["Set-Cookie"]


def test_a_new_admin_token_ends_the_old_sessions(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    log_in(client)
    assert client.get("/admin/status").status_code == 200
    app.config["ADMIN_TOKEN"] = "a-brand-new-admin-token-42"
    assert client.get("/admin/status").status_code == 302


def test_every_form_needs_its_csrf_token(client: Any) -> None:
    upload(client, "C1", images.png(1, 32))
    log_in(client)
    for path in (
        "/admin/products/new",
        "/admin/products/1/edit",
        "/admin/products/1/delete",
        "/admin/photos/retry",
        "/admin/models/activate",
        "/admin/logout",
        "/search",
        "/admin/login",
    ):
        response = client.post(path, data={"sku": "X", "title": "x", "category": "dress"})
        assert response.status_code == 400, path
        assert "not sent from this site" in response.get_data(as_text=True), path
    assert client.get("/api/v1/products/1").status_code == 200
    assert client.get("/admin/status").status_code == 200  # still logged in


def test_new_product_form_shows_every_error_beside_its_field_and_stores_nothing(client: Any, app: Any) -> None:
    upload(client, "TAKEN", images.png(1, 32))
    log_in(client)
    before = stored_files(app)
    bad = post_form(
        client,
        "/admin/products/new",
        product_form("bad sku", (b"not an image", "n.jpg"), price="-3", attributes="[1]", url="/p/1"),
    )
    assert bad.status_code == 400
    shown = errors(bad)
    assert set(shown) == {"sku", "price", "attributes", "images", "url"}
    assert shown["url"] == ["an absolute http or https URL"]
    assert shown["images"] == ["n.jpg: not a JPEG, PNG, GIF or WebP image by its content"]
    duplicate = post_form(client, "/admin/products/new", product_form("TAKEN", (images.png(2, 32), "p.png")))
    assert duplicate.status_code == 409 and errors(duplicate) == {"sku": ["a product with sku 'TAKEN' already exists"]}
    assert 'value="TAKEN"' in duplicate.get_data(as_text=True)  # the form keeps what was typed
    assert stored_files(app) == before
    assert client.get("/api/v1/products").json["total"] == 1

    made = post_form(
        client,
        "/admin/products/new",
        product_form(
            "NEW-1",
            (images.png(3, 32), "a.png"),
            (images.jpeg(4, 32), "b.jpg"),
            brand="acme",
            price="12.5",
            attributes='{"colour": "red"}',
            url="https://shop.example/p/new-1",
        ),
    )
    assert made.status_code == 302 and made.headers["Location"] == "/products/2"
    product = client.get("/api/v1/products/2").json
    assert (product["brand"], product["price"], product["attributes"]) == ("acme", 12.5, {"colour": "red"})
    assert product["url"] == "https://shop.example/p/new-1"
    assert [i["status"] for i in product["images"]] == ["indexed", "indexed"]


def test_edit_change_photos_and_delete(client: Any, app: Any) -> None:
    upload(client, "E1", images.png(1, 32), brand="acme", price="5")
    upload(client, "E2", images.png(2, 32))
    log_in(client)
    saved = post_form(
        client,
        "/admin/products/1/edit",
        {"sku": "E1", "title": "Renamed", "category": "hat", "brand": "", "price": "7.25", "attributes": ""},
    )
    assert saved.status_code == 302
    product = client.get("/api/v1/products/1").json
    assert (product["title"], product["category"], product["brand"], product["price"]) == ("Renamed", "hat", None, 7.25)
    # The index follows: only hats, and the renamed product is one.
    assert [i["product"]["id"] for i in client.get("/api/v1/products/2/similar?category=hat").json["items"]] == [1]

    taken = post_form(client, "/admin/products/1/edit", {"sku": "E2", "title": "x", "category": "hat"})
    assert taken.status_code == 409 and errors(taken) == {"sku": ["a product with sku 'E2' already exists"]}
    emptied = post_form(client, "/admin/products/1/edit", {"sku": "E1", "title": "", "category": "hat"})
    assert emptied.status_code == 400 and "title" in errors(emptied)
    assert client.get("/api/v1/products/1").json["title"] == "Renamed"

    added = post_form(
        client,
        "/admin/products/1/photos",
        {"images": [(io.BytesIO(images.png(5, 32)), "more.png")]},
        token_from="/admin/products/1/edit",
    )
    assert added.status_code == 302
    photos = client.get("/api/v1/products/1").json["images"]
    assert len(photos) == 2
    storage = MediaStorage(app.config["SETTINGS"].media_root)
    name = photos[1]["url"].removeprefix("/media/")
    assert storage.thumbnail_path(name).is_file()  # made when it was embedded
    assert (
        post_form(
            client, f"/admin/photos/{photos[1]['id']}/delete", {}, token_from="/admin/products/1/edit"
        ).status_code
        == 302
    )
    assert not storage.path(name).exists() and not storage.thumbnail_path(name).exists()

    assert post_form(client, "/admin/products/1/delete", {}, token_from="/admin/products/1/edit").status_code == 302
    assert client.get("/products/1").status_code == 404
    assert [i["product"]["id"] for i in client.get("/api/v1/products/2/similar").json["items"]] == []


def test_status_page_lists_failed_photos_and_retries_them(client: Any, app: Any) -> None:
    upload(client, "F1", images.png(1, 32))
    upload(client, "F2", images.png(2, 32))
    with app.app_context():
        fail_photos(db.session, [1, 2], "the store was away", FailureKind.transient)
    log_in(client)
    page = client.get("/admin/status").get_data(as_text=True)
    assert page.count("the store was away") == 2 and re.search(r'id="photos-failed">2<', page)
    assert post_form(client, "/admin/photos/retry", {"image_id": "1"}, token_from="/admin/status").status_code == 302
    assert [i["status"] for i in (client.get(f"/api/v1/products/{p}").json["images"][0] for p in (1, 2))] == [
        "indexed",
        "failed",
    ]
    post_form(client, "/admin/photos/retry", {}, token_from="/admin/status")
    page = client.get("/admin/status").get_data(as_text=True)
    assert re.search(r'id="photos-indexed">2<', page) and "No failed photo." in page


def test_models_page_activates_a_model_with_the_reindexs_progress(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    for i in range(3):
        upload(client, f"M{i}", images.png(i, 32))
    log_in(client)
    page = client.get("/admin/models").get_data(as_text=True)
    assert re.search(r'id="active-model">untrained', page)
    unknown = post_form(client, "/admin/models/activate", {"version": "no-such-model"}, token_from="/admin/models")
    assert "Cannot activate" in client.get(unknown.headers["Location"]).get_data(as_text=True)

    target = "efficientnet_lite0-imagenet"
    assert (
        post_form(client, "/admin/models/activate", {"version": target}, token_from="/admin/models").status_code == 302
    )
    deadline = time.monotonic() + 180
    while target not in re.search(
        r'id="active-model">([^<]+)<', client.get("/admin/models").get_data(as_text=True)
    ).group(1):
        assert time.monotonic() < deadline, "the reindex did not finish in 180 s"
        time.sleep(0.5)
    with app.app_context():
        active = db.session.query(IndexCollection).filter_by(state=CollectionState.active).one()
        assert (active.model_version, active.photos_total, active.photos_done) == (target, 3, 3)
    assert client.get("/api/v1/stats").json["model"]["version"] == target


def test_thumbnails_are_made_once_oriented_and_small(client: Any, app: Any) -> None:
    # A 120x60 JPEG whose EXIF says "turn 90°": people see it 60 wide and 120 tall.
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.tile(np.arange(120, dtype=np.uint8), (60, 1))[..., None].repeat(3, axis=2)).save(
        buffer, "JPEG", exif=exif
    )
    large = images.png(7, 900)
    product = upload(client, "T1", buffer.getvalue(), large).json
    urls = [image["url"].replace("/media/", "/media/thumbs/", 1) for image in product["images"]]
    turned = Image.open(io.BytesIO(client.get(urls[0]).data))
    assert turned.size == (60, 120) and turned.format == "JPEG"
    small = client.get(urls[1])
    assert small.mimetype == "image/jpeg" and max(Image.open(io.BytesIO(small.data)).size) == THUMB_SIDE
    storage = MediaStorage(app.config["SETTINGS"].media_root)
    path = storage.thumbnail_path(product["images"][1]["url"].removeprefix("/media/"))
    made = path.stat().st_mtime_ns
    client.get(urls[1])
    assert path.stat().st_mtime_ns == made  # made once
    assert client.get("/media/thumbs/../../etc/passwd").status_code == 404
    assert client.get("/media/thumbs/ab/" + "a" * 32 + ".png").status_code == 404


def test_pages_have_a_strict_csp_and_docs_load_nothing_from_elsewhere(client: Any) -> None:
    for path in ("/", "/search", "/admin/login", "/products/999"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy and "frame-ancestors 'none'" in policy, path
        assert response.headers["X-Frame-Options"] == "DENY"
    docs = client.get("/docs").get_data(as_text=True)
    assert re.findall(r'(?:src|href)="(?!/)[^"]*"', docs) == [] and "/docs/assets/swagger-ui-bundle.js" in docs
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.mimetype in ("text/javascript", "application/javascript")
    assert client.get("/docs/assets/index.html").status_code == 404
    assert "https://" not in client.get("/docs").headers["Content-Security-Policy"]


class CountingStream(io.BytesIO):
    """A request body that counts what the app reads of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.consumed = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.consumed += len(chunk)
        return chunk

    def readline(self, size: int | None = -1) -> bytes:
        line = super().readline(size)
        self.consumed += len(line)
        return line


def multipart(fields: dict[str, str], filler: int) -> tuple[bytes, str]:
    boundary = "lookalike-test-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="a.jpg"\r\n\r\n')
    body = "".join(parts).encode() + b"\xff" * filler + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_a_page_post_is_refused_before_its_body_is_read(client: Any) -> None:
    """Page POSTs read bodies up to MAX_CONTENT_LENGTH (401 MB) before the CSRF check: now an admin page
    sends a stranger to the login page unread, and a form without photos takes FORM_BODY_BYTES."""
    upload(client, "B1", images.png(1, 32))
    body, content_type = multipart({"sku": "X", "title": "x", "category": "dress"}, 3_000_000)

    def post(path: str) -> tuple[Any, CountingStream]:
        stream = CountingStream(body)
        response = client.post(path, input_stream=stream, content_type=content_type, content_length=len(body))
        return response, stream

    for path in ("/admin/products/new", "/admin/products/1/photos", "/admin/products/1/edit", "/admin/models/activate"):
        response, stream = post(path)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"], path
        assert stream.consumed == 0, path
    log_in(client)
    for path in ("/admin/products/1/edit", "/admin/models/activate", "/admin/photos/retry", "/admin/login"):
        response, stream = post(path)
        assert response.status_code == 413 and stream.consumed == 0, path
    # The pages that take photos take as much as the API: read, then refused for its missing CSRF token.
    response, stream = post("/admin/products/new")
    assert response.status_code == 400 and "not sent from this site" in response.get_data(as_text=True)
    assert client.get("/api/v1/products/1").json["sku"] == "B1"
