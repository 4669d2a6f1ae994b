"""A PNG of a card page in headless Chromium (Playwright), for docs and for the browser test's checks.

Playwright drives the system's Chromium (Debian's `chromium` package) through `executable_path`, so no
browser download is needed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def find_chromium() -> str | None:
    """$FAIRDML_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on the PATH; None when absent."""
    configured = os.environ.get("FAIRDML_CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot_card(
    html_path: str | os.PathLike, png_path: str | os.PathLike, width: int = 1280, selector: str | None = None
) -> Path:
    """PNG of a card as the browser shows it after its script ran: the full page, or one element
    (`selector`, e.g. "#threshold-view")."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as error:
        raise RuntimeError("screenshots need playwright: pip install 'fairdml[dev]'") from error
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium not found: apt-get install chromium (or set FAIRDML_CHROMIUM to it)")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(Path(html_path).resolve().as_uri())
            page.wait_for_load_state("load")
            page.add_style_tag(content="nav { position: static; }")  # a sticky bar would cover stitched parts
            if selector is None:
                page.screenshot(path=str(png_path), full_page=True)
            else:
                page.locator(selector).screenshot(path=str(png_path))
        finally:
            browser.close()
    return png_path
