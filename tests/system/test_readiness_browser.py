"""The readiness page in a real browser, against real workers and real gates.

Headless Chromium (Debian's, driven by Playwright) on the live server: the page shows a
running blocking task and updates by itself when it ends; Prepare deploy and Resume
consumers work for a user with the permissions, through their confirmation pages, and are
absent for a user without them. The screenshots are the documentation's (docs/img).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    browser,
    browser_page,
    follow,
    keep_for_docs,
    log_in,
    require_chromium,
)
from tests.support.lab import Lab
from tests.support.web import PASSWORD, PERMISSIONS, site_on, staff

pytestmark = pytest.mark.browser

PAGE = "/admin/taskmaster/deployreadiness/"
UPDATES = 40_000  # ms a change may take to show: a refresh every 3 s, a task's own end


@pytest.fixture
def chromium() -> Path:
    return require_chromium()


@pytest.fixture
def site(lab: Lab) -> Iterator[Lab]:
    with site_on(lab, TASKMASTER_TIMEOUT="90", TASKMASTER_INTERVAL="1"):
        yield lab


def headline(page: Any) -> Any:
    return page.locator("#tm-headline-title")


def test_the_page_shows_a_running_blocking_task_and_updates_when_it_ends(
    chromium: Path, site: Lab, live_server: Any, django_user_model: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    worker = site.start_worker("w1", concurrency=3)
    staff(django_user_model, "viewer")  # may look, may not act
    task_id = site.send("generate_report", 300, kwargs={"customer": "hunter2-secret"})
    site.send("resize_images", 300)
    site.wait_active(worker.name, count=2)
    shot = tmp_path / "readiness-blocked.png"

    with browser_page(chromium) as page:
        log_in(page, live_server.url, "viewer", PASSWORD)
        follow(page, page.get_by_role("link", name="Deploy readiness"))
        expect(headline(page)).to_have_text("Blocked by 1 task")
        # A short task starts only now that the page is up: its 25 s are the page's, not
        # the browser's start.
        site.send("send_receipt", 25)
        site.wait_active(worker.name, count=3)

        expect(headline(page)).to_have_text("Blocked by 2 tasks", timeout=UPDATES)
        row = page.locator(f'tr[data-task-id="{task_id}"]')
        expect(row.locator(".tm-kind")).to_have_text("blocking")
        assert re.fullmatch(r"\d+ s", row.locator("td").nth(4).inner_text())  # running for
        workers = page.locator("#tm-workers").inner_text()
        assert worker.name in workers and "consuming" in workers
        assert page.locator("#tm-prepare").count() == 0  # no permission, no button
        assert "hunter2-secret" not in page.content()
        page.screenshot(path=str(shot), full_page=True)
        page.evaluate("window.tmStillHere = true")  # gone if the page reloads

        # generate_report ends (the test ends it, once the page has shown it: no race with
        # the browser's start); send_receipt still runs (short, bounded).
        site.app.control.revoke(task_id, terminate=True)
        expect(headline(page)).to_have_text("Blocked by 1 task", timeout=UPDATES)
        expect(page.locator(f'tr[data-task-id="{task_id}"]')).to_have_count(0)
        assert page.locator("#tm-headline-detail").inner_text().startswith("Expected to clear by ")
        assert page.evaluate("window.tmStillHere") is True  # updated in place
        assert page.locator("#tm-readiness").get_attribute("data-refreshed-at")

    assert site.active_queues() == {worker.name: [site.queue]}  # looking cancelled nothing
    keep_for_docs(shot)


def test_prepare_deploy_and_resume_consumers_for_a_user_with_the_permissions(
    chromium: Path, site: Lab, live_server: Any, django_user_model: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    worker = site.start_worker("w1")
    staff(django_user_model, "deployer", *PERMISSIONS)
    staff(django_user_model, "viewer")
    site.send("generate_report", 25)  # long enough to see the drain wait for it
    site.wait_active(worker.name)
    shots = {name: tmp_path / f"readiness-{name}.png" for name in ("drain", "cleared", "confirm")}

    with browser(chromium) as chrome:
        page = chrome.new_page(viewport={"width": 1280, "height": 900})
        log_in(page, live_server.url, "deployer", PASSWORD)
        page.goto(f"{live_server.url}{PAGE}")
        expect(headline(page)).to_have_text("Blocked by 1 task")

        follow(page, page.locator("#tm-prepare"))
        assert page.locator("#content h1").inner_text() == "Prepare deploy"
        page.screenshot(path=str(shots["confirm"]), full_page=True)
        follow(page, page.locator("#tm-confirm"))

        assert page.locator(".messagelist").text_content().strip().startswith("Gate started (pid ")
        expect(headline(page)).to_contain_text("Drain in progress since ", timeout=UPDATES)
        expect(headline(page)).to_contain_text(" by deployer (admin from 127.0.0.1), ")
        expect(page.locator(f'tr[data-worker="{worker.name}"] .tm-drained')).to_be_visible(
            timeout=UPDATES
        )
        assert page.locator("#tm-prepare").count() == 0
        page.screenshot(path=str(shots["drain"]), full_page=True)

        # The report ends, the gate clears; its lease holds the worker drained.
        expect(headline(page)).to_contain_text("Deploy cleared by gate run #", timeout=UPDATES)
        page.screenshot(path=str(shots["cleared"]), full_page=True)
        assert site.active_queues() == {worker.name: []}

        viewer = chrome.new_page(viewport={"width": 1280, "height": 900})
        log_in(viewer, live_server.url, "viewer", PASSWORD)
        viewer.goto(f"{live_server.url}{PAGE}")
        expect(headline(viewer)).to_contain_text("Deploy cleared by gate run #")
        assert viewer.locator("#tm-resume, #tm-prepare").count() == 0

        follow(page, page.locator("#tm-resume"))
        assert page.locator("#content h1").inner_text() == "Resume consumers"
        follow(page, page.locator("#tm-confirm"))

        # text_content: the admin's style capitalizes a message's first letter on screen.
        assert page.locator(".messagelist").text_content().strip() == (
            f"Verified: {worker.name} consumes {site.queue} again."
        )
        expect(headline(page)).to_have_text("Safe to deploy")
        expect(page.locator("#tm-prepare")).to_be_visible()

    assert site.active_queues() == {worker.name: [site.queue]}
    for shot in shots.values():
        keep_for_docs(shot)
