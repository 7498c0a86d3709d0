"""Headless Debian Chromium driven by Playwright, for the browser tests.

``UPDATE_DOCS_SCREENSHOTS=1`` also writes each test's screenshots to ``docs/img`` for the
documentation; otherwise they stay in the test's temporary folder, so a test run leaves the
checkout clean.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS_IMAGES = ROOT / "docs" / "img"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTH = 1280  # the window the admin pages must fit (the laptop)


def require_chromium() -> Path:
    """Debian's Chromium; checked before any worker starts, so a missing one fails fast."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI requires the browser test")
        pytest.skip(message)
    return CHROMIUM


@contextmanager
def browser(chromium: Path) -> Iterator[Any]:
    """A headless Chromium, closed on exit.

    Use the ORM only outside this block: Playwright's sync API runs the test in a
    greenlet with its own context, where Django would open a second database
    connection that nothing closes (and the test database could not be dropped).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chrome
        finally:
            chrome.close()


@contextmanager
def browser_page(chromium: Path, width: int = WIDTH) -> Iterator[Any]:
    """One page of a headless Chromium, closed on exit (see ``browser``)."""
    with browser(chromium) as chrome:
        yield chrome.new_page(viewport={"width": width, "height": 900})


def follow(page: Any, link: Any) -> None:
    """Click a link (or submit) and wait for the next page: reading earlier would race."""
    before = page.url
    link.click()
    page.wait_for_url(lambda url: url != before)
    page.wait_for_load_state()


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    follow(page, page.locator("input[type=submit]"))


def fits(page: Any, selector: str) -> dict[str, float]:
    """How wide ``selector`` is against the box that holds it and the window."""
    return dict(
        page.evaluate(
            """(selector) => {
                const table = document.querySelector(selector);
                const box = table.parentElement;
                return {table: table.scrollWidth, box: box.clientWidth,
                        page: document.documentElement.scrollWidth, window: window.innerWidth};
            }""",
            selector,
        )
    )


def keep_for_docs(shot: Path) -> None:
    """Copy a screenshot to docs/img when UPDATE_DOCS_SCREENSHOTS asks for it."""
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGES / shot.name)
