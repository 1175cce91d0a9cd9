"""Screenshots of the web UI for the README (`docs/screenshots/*.png`).

    .venv/bin/python scripts/screenshots.py [OUT_DIR]

Loads the demo (catalog, demo users, themes) into a temporary data directory
with `metamedia demo --no-serve`, starts `metamedia serve` on a free port with
a throw-away admin key, and drives Debian's chromium (`/usr/bin/chromium`, or
$METAMEDIA_CHROMIUM) through Playwright. The browser test suite calls
`take_screenshots` against its own server, so this script stays in working order.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def take_screenshots(browser: Any, base_url: str, admin_key: str, out_dir: Path) -> list[Path]:
    """Search, item, feed and admin at desktop width, search at phone width."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def shot(page: Any, name: str, full_page: bool = False) -> None:
        path = out_dir / name
        page.screenshot(path=str(path), full_page=full_page)
        written.append(path)

    context = browser.new_context(base_url=base_url, viewport=DESKTOP, device_scale_factor=1)
    page = context.new_page()
    page.goto("/?q=space+station+survival&genre=sci-fi&genre=thriller")
    page.locator("li.card details.why").first.locator("summary").click()
    page.set_viewport_size({"width": DESKTOP["width"], "height": 1150})
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "search.png")
    page.set_viewport_size(DESKTOP)
    page.goto("/media/mm-0040")
    shot(page, "item.png")
    page.goto("/feed")
    page.get_by_role("button", name="Ada").first.click()
    page.wait_for_selector("[data-feed] > li.card")
    card = page.locator("[data-feed] > li.card").nth(2)
    with page.expect_response(lambda r: r.url.endswith("/feed/react")):
        card.get_by_role("button", name="Watched", exact=True).click()
    page.wait_for_selector("[data-feed-status]:has-text('Feed updated')", state="attached")
    shot(page, "feed.png")
    page.goto("/admin")
    page.get_by_label("API key").fill(admin_key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/admin")
    shot(page, "admin.png", full_page=True)
    context.close()

    phone = browser.new_context(base_url=base_url, viewport=PHONE, device_scale_factor=1)
    page = phone.new_page()
    page.goto("/?q=feel-good+romance+in+Paris")
    shot(page, "search-mobile.png")
    phone.close()
    return written


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def main() -> None:
    from playwright.sync_api import sync_playwright

    out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    metamedia = str(ROOT / ".venv" / "bin" / "metamedia")
    chromium = os.environ.get("METAMEDIA_CHROMIUM", "/usr/bin/chromium")
    key = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data")
        subprocess.run(
            [metamedia, "demo", "--no-serve", "--json", "--data-dir", data],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = _free_port()
        env = {**os.environ, "METAMEDIA_ADMIN_KEY": key}
        server = subprocess.Popen(
            [metamedia, "serve", "--port", str(port), "--data-dir", data],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True)
                for path in take_screenshots(browser, base, key, out_dir):
                    print(f"{path} ({path.stat().st_size // 1024} KB)")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
