"""The non-interruptible tasks page in a real browser, over data a real gate run wrote.

A real worker runs ``generate_report``; a real ``prepare_deploy`` subprocess gives up on
it (exit 1) and records the blocker; ``sync_registry`` records the demo app's tasks. Then
headless Chromium (Debian's, driven by Playwright) logs in to the admin as a person would.

``UPDATE_DOCS_SCREENSHOTS=1`` also writes the page to ``docs/img`` for the documentation;
otherwise the screenshot goes to the test's temporary folder, so a test run leaves the
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

from taskmaster.loading import load_app, load_registry
from taskmaster.models import TaskPolicy
from taskmaster.policy import sync_registry
from tests.lab import Lab

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
DOCS_SCREENSHOT = ROOT / "docs" / "img" / "non-interruptible-tasks.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPORT = "project.tasks.generate_report"
RECEIPT = "project.tasks.send_receipt"
RESIZE = "project.tasks.resize_images"
NOTES = "Owner: reports team. OPS-42: make it acks_late and idempotent."


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; checked before any worker starts, so a missing one fails fast."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI requires the browser test")
        pytest.skip(message)
    return CHROMIUM


@contextmanager
def browser_page(chromium: Path) -> Iterator[Any]:
    """A page of a headless Chromium, closed on exit.

    Use the ORM only outside this block: Playwright's sync API runs the test in a
    greenlet with its own context, where Django would open a second database
    connection that nothing closes (and the test database could not be dropped).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser.new_page(viewport={"width": 1600, "height": 900})
        finally:
            browser.close()


def blocked_gate_run(lab: Lab) -> tuple[str, str]:
    """Run the real gate while generate_report runs; return (task id, worker)."""
    worker = lab.start_worker("w1")
    task_id = lab.send("generate_report", 60)
    lab.wait_active(worker.name)
    result = lab.manage("prepare_deploy", "--interval", "1", "--timeout", "3")
    assert result.code == 1, result.text
    return task_id, worker.name


def follow(page: Any, link: Any) -> None:
    """Click a link (or submit) and wait for the next page: reading earlier would race."""
    before = page.url
    link.click()
    page.wait_for_url(lambda url: url != before)
    page.wait_for_load_state()


def task_names(page: Any) -> list[str]:
    return [name.strip() for name in page.locator("#result_list th.field-name").all_inner_texts()]


def test_the_non_interruptible_tasks_page_over_a_real_blocked_gate_run(
    chromium: Path,
    lab: Lab,
    live_server: Any,
    django_user_model: Any,
    tmp_path: Path,
) -> None:
    task_id, worker = blocked_gate_run(lab)
    sync_registry(load_registry(load_app()))
    django_user_model.objects.create_superuser("police", "police@example.com", "s3cret-pw")
    shot = tmp_path / "non-interruptible-tasks.png"

    with browser_page(chromium) as page:
        page.goto(f"{live_server.url}/admin/")
        page.fill("#id_username", "police")
        page.fill("#id_password", "s3cret-pw")
        follow(page, page.locator("input[type=submit]"))
        follow(page, page.get_by_role("link", name="Non-interruptible tasks"))

        assert page.locator("h1").inner_text() == "Select non-interruptible task to change"
        # Blocking first (it blocked the deploy), then short; the interruptible one is hidden.
        assert task_names(page) == [REPORT, RECEIPT]
        report_row = page.locator("#result_list tr", has=page.locator("th", has_text=REPORT))
        assert report_row.locator("td.field-deploys_blocked_recently").inner_text() == "1"
        assert report_row.locator("td.field-deploys_blocked").inner_text() == "1"
        assert report_row.locator("td.field-classification").inner_text() == "blocking"

        filters = page.locator("#changelist-filter")
        follow(page, filters.get_by_role("link", name="short", exact=True))
        assert task_names(page) == [RECEIPT]
        follow(page, filters.get_by_role("link", name="all", exact=True))
        assert sorted(task_names(page)) == [REPORT, RESIZE, RECEIPT]
        follow(page, filters.get_by_role("link", name="non-interruptible (short and blocking)"))
        assert task_names(page) == [REPORT, RECEIPT]

        follow(page, page.get_by_role("link", name=REPORT))
        blockers = page.locator(".field-recent_blockers table").inner_text()
        assert task_id in blockers
        assert worker in blockers
        assert "blocked" in blockers
        page.fill("#id_notes", NOTES)
        follow(page, page.get_by_role("button", name="Save", exact=True))

        assert "was changed successfully" in page.locator(".messagelist").inner_text()
        assert task_names(page) == [REPORT, RECEIPT]
        assert "OPS-42" in page.locator("#result_list").inner_text()
        # For the docs, the page as someone reading the table would set it: nav collapsed.
        page.click("#toggle-nav-sidebar")
        page.screenshot(path=str(shot), full_page=True)

    assert TaskPolicy.objects.get(name=REPORT).notes == NOTES
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
