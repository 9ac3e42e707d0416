"""Headless Debian Chromium for browser tests, driven by Playwright (no browser download)."""

import os
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import sync_playwright

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextmanager
def chromium_page(*, viewport=None):
    """A fresh page in a fresh headless Chromium; console errors collect in
    ``page.console_errors`` (tests assert it stays empty)."""
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
            page = context.new_page()
            page.console_errors = []
            page.on(
                "console", lambda msg: msg.type == "error" and page.console_errors.append(msg.text)
            )
            page.on("pageerror", lambda exc: page.console_errors.append(str(exc)))
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save a screenshot under artifacts/ (kept by CI as a test artifact)."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def docs_screenshot(page, name: str, *, full_page: bool = True) -> Path:
    """A screenshot kept under docs/img/ (the docs show it; reviewers look at it), and under
    artifacts/ like every other."""
    path = DOCS_IMG / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / path.name).write_bytes(path.read_bytes())
    return path
