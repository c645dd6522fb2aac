"""Screenshots of the main pages for the README, taken in Debian's chromium against a real `lookalike serve`.

    uv run python docs/screenshots.py [--photos ../shared/datasets/clothing-small/validation] [--out docs/screenshots]

Imports the photos into a fresh embedded store (the default model), serves it, and saves catalog.png,
product.png, search.png, new-product.png and status.png. Run it by hand when the pages change; CI does not.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.harness import LOOKALIKE, clean_env, serving  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=ROOT.parent / "shared/datasets/clothing-small/validation")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/screenshots")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lookalike-shots-") as tmp:
        env = clean_env(VAR_DIR=str(Path(tmp) / "var"))
        subprocess.run([LOOKALIKE, "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True)
        subprocess.run([LOOKALIKE, "import", str(args.photos.resolve())], env=env, cwd=tmp, check=True)
        with serving(env, cwd=Path(tmp), log_path=Path(tmp) / "serve.log") as server:
            shoot(server.base, server.admin_token(), args)
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


if __name__ == "__main__":
    main()
