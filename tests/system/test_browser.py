"""The non-interruptible tasks page in a real browser, over data a real gate run wrote.

A real worker runs ``generate_report``; a real ``prepare_deploy`` subprocess gives up on
it (exit 1) and records the blocker; ``sync_registry`` records the demo app's tasks. Then
headless Chromium (Debian's, driven by Playwright) logs in to the admin as a person would,
in a 1,280 px window, where every column of the list must show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskmaster.conf import load_app
from taskmaster.drain.policy import sync_registry
from taskmaster.gate.registry import load_registry
from taskmaster.models import TaskPolicy
from tests.support.browser import (
    browser_page,
    fits,
    follow,
    keep_for_docs,
    log_in,
    require_chromium,
)
from tests.support.lab import Lab

pytestmark = pytest.mark.browser

REPORT = "project.tasks.generate_report"
RECEIPT = "project.tasks.send_receipt"
RESIZE = "project.tasks.resize_images"
NOTES = "Owner: reports team. OPS-42: make it acks_late and idempotent."


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


def blocked_gate_run(lab: Lab) -> tuple[str, str]:
    """Run the real gate while generate_report runs; return (task id, worker)."""
    worker = lab.start_worker("w1")
    task_id = lab.send("generate_report", 60)
    lab.wait_active(worker.name)
    result = lab.manage("prepare_deploy", "--interval", "1", "--timeout", "3")
    assert result.code == 1, result.text
    return task_id, worker.name


def task_names(page: Any) -> list[str]:
    cells = page.locator("#result_list th.field-task_name").all_inner_texts()
    return [name.strip() for name in cells]


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
        log_in(page, live_server.url, "police", "s3cret-pw")
        follow(page, page.get_by_role("link", name="Non-interruptible tasks"))

        assert page.locator("#content h1").inner_text() == "Select non-interruptible task to change"
        # Blocking first (it blocked the deploy), then short; the interruptible one is hidden.
        assert task_names(page) == [REPORT, RECEIPT]
        report_row = page.locator("#result_list tr", has=page.locator("th", has_text=REPORT))
        assert report_row.locator("td.field-deploys_blocked_recently").inner_text() == "1"
        assert report_row.locator("td.field-at_the_gate").inner_text() == "blocked 1 deploy"
        assert report_row.locator("td.field-classification").inner_text() == "blocking"
        receipt_row = page.locator("#result_list tr", has=page.locator("th", has_text=RECEIPT))
        assert receipt_row.locator("td.field-at_the_gate").inner_text() == "could block one"

        filters = page.locator("#changelist-filter")
        follow(page, filters.get_by_role("link", name="short", exact=True))
        assert task_names(page) == [RECEIPT]
        follow(page, filters.get_by_role("link", name="all", exact=True))
        assert sorted(task_names(page)) == [REPORT, RESIZE, RECEIPT]
        follow(page, filters.get_by_role("link", name="blocked a deploy"))
        assert task_names(page) == [REPORT]
        follow(page, filters.get_by_role("link", name="non-interruptible (short and blocking)"))
        assert task_names(page) == [REPORT]  # the other filter still holds
        follow(page, filters.get_by_role("link", name="All", exact=True).nth(0))
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
        # At 1,280 px, beside the navigation and the filters, every column shows: the
        # table is no wider than the box that holds it, and the page no wider than the window.
        width = fits(page, "#result_list")
        assert width["table"] <= width["box"] and width["page"] <= width["window"], width
        assert page.locator("#result_list th.column-notes_excerpt").is_visible()
        page.screenshot(path=str(shot), full_page=True)

    assert TaskPolicy.objects.get(name=REPORT).notes == NOTES
    keep_for_docs(shot)
