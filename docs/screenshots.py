"""Screenshots of the main pages for the README, taken in Debian's chromium against a real `lookalike serve`.

    uv run python docs/screenshots.py [--photos ../shared/datasets/clothing-small/validation] [--out docs/screenshots]

Imports the photos into a fresh embedded store (the default model), serves it, and saves catalog.png,
product.png, search.png, new-product.png and status.png; then widget.png: the look-alikes widget on a demo shop
page served from another origin (a second local port, in ALLOWED_ORIGINS); and analytics.png: the analytics page
over two weeks of synthetic shopper events of two arms (made up here, 6% and 8% CTR, to show the page). Run it by
hand when the pages change; CI does not.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import math
import random
import subprocess
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.harness import LOOKALIKE, clean_env, free_port, serving  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared/datasets/clothing-small/validation")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lookalike-shots-") as tmp:
        shop_port = free_port()
        env = clean_env(VAR_DIR=str(Path(tmp) / "var"), ALLOWED_ORIGINS=f"http://127.0.0.1:{shop_port}")
        subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True)
        subprocess.run([LOOKALIKE, "import", str(args.photos.resolve())], env=env, cwd=tmp, check=True)
        with serving(env, cwd=Path(tmp), log_path=Path(tmp) / "serve.log") as server:
            shoot(server.base, server.admin_token(), args)
            shoot_widget(server.base, server.admin_token(), shop_port, Path(tmp) / "site", args)
            shoot_analytics(server.base, server.admin_token(), args)
    print(f"screenshots in {args.out}")


def shoot(base: str, token: str, args: argparse.Namespace) -> None:
    query = sorted((args.photos / "dress").glob("*.jpg"))[-1]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 860})

        def save(name: str, full_page: bool = False) -> None:
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / f"{name}.png"), full_page=full_page)
            print(f"{name}.png: {page.url}")

        page.goto("/?category=dress")
        save("catalog")
        page.click("#catalog a.card >> nth=3")
        save("product", full_page=True)
        page.goto("/search")
        page.set_input_files("#image", str(query))
        page.click("form.search button[type=submit]")
        save("search", full_page=True)
        page.goto("/admin/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        save("status")
        page.goto("/admin/products/new")
        page.fill("#sku", "DRESS-0042")
        page.fill("#title", "Linen summer dress")
        page.fill("#category", "dress")
        page.fill("#price", "-5")
        page.set_input_files("#images", [str(p) for p in sorted((args.photos / "dress").glob("*.jpg"))[:3]])
        page.click("#product-form button[type=submit]")
        save("new-product")
        browser.close()


DEMO_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>{title} - Demo shop</title>
<style>
  body {{ font-family: Georgia, serif; margin: 0; color: #222; }}
  header {{ background: #1f2937; color: #fff; padding: 14px 32px; font-size: 22px; letter-spacing: .04em; }}
  main {{ max-width: 1100px; margin: 24px auto; padding: 0 32px; }}
  .hero {{ display: flex; gap: 32px; align-items: flex-start; margin-bottom: 32px; }}
  .hero img {{ width: 300px; border-radius: 8px; }}
  .lookalike {{ --lookalike-card-width: 150px; --lookalike-accent: #b45309; --lookalike-font: Georgia, serif; }}
</style>
<header>DEMO SHOP</header>
<main>
  <div class="hero"><img src="{photo}" alt="{title}"><div><h1>{title}</h1><p>{price}</p>
    <p>The shop's own product page: the two lines below it are all the widget needs.</p></div></div>
  <script src="{base}/widget.js" async></script>
  <div data-lookalike-sku="{sku}" data-limit="6" data-category="dress" data-title="You may also like"></div>
</main>
"""


def shoot_widget(base: str, token: str, port: int, site: Path, args: argparse.Namespace) -> None:
    """The widget on a demo shop page of another origin; every dress gets a price and a page of that shop."""
    shop = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {token}"}
    dresses = httpx.get(f"{base}/api/v1/products", params={"category": "dress", "per_page": 100}).json()["items"]
    (site / "p").mkdir(parents=True, exist_ok=True)
    for n, product in enumerate(dresses):
        change = {"url": f"{shop}/p/{product['id']}.html", "price": 29.9 + n % 7 * 10}
        httpx.patch(f"{base}/api/v1/products/{product['id']}", json=change, headers=auth).raise_for_status()
        (site / "p" / f"{product['id']}.html").write_text(f"<h1>{product['title']}</h1>")
    hero = dresses[3]
    (site / "index.html").write_text(
        DEMO_PAGE.format(
            base=base,
            sku=hero["sku"],
            title=hero["title"],
            price=f"{29.9 + 3 % 7 * 10:.2f}",
            photo=base + hero["images"][0]["url"],
        )
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{shop}/index.html")
            page.locator(".lookalike-card >> nth=5").wait_for()
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "widget.png"), full_page=True)
            print(f"widget.png: {page.url}")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()


def shoot_analytics(base: str, token: str, args: argparse.Namespace) -> None:
    """Synthetic events (two arms, 14 days, about 6% and 8% CTR), then the analytics page."""
    rng = random.Random(0)
    ids = [p["id"] for p in httpx.get(f"{base}/api/v1/products", params={"per_page": 100}).json()["items"]]
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    events = []
    for day in range(14):
        at = (today - timedelta(days=13 - day)).isoformat()
        for arm, version, ctr in (("A", "efficientnet_lite0-imagenet", 0.06), ("B", "fine-tuned-demo", 0.08)):
            for n in range(400):
                query, *shown = rng.sample(ids, 9)
                common = {
                    "query": query,
                    "visitor": f"demo-{arm}-{n:05d}",
                    "model_version": version,
                    "arm": arm,
                    "at": at,
                }
                events.append({**common, "type": "impression", "shown": shown})
                if rng.random() < ctr * (1 + 0.2 * math.sin(day / 2)):
                    position = min(8, 1 + int(rng.expovariate(0.5)))
                    events.append({**common, "type": "click", "product": shown[position - 1], "position": position})
    with httpx.Client(base_url=base, timeout=60) as client:
        for start in range(0, len(events), 50):
            client.post("/api/v1/events", json={"events": events[start : start + 50]}).raise_for_status()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
        page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 860})
        page.goto("/admin/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.goto("/admin/analytics")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(args.out / "analytics.png"), full_page=True)
        print(f"analytics.png: {page.url}")
        browser.close()


if __name__ == "__main__":
    main()
