"""The readiness page over real workers, read through Django's test client: what it shows,
that it never acts by itself, and how it holds up when the broker is slow, down or a worker
falls silent."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from taskmaster.models import GateRun
from taskmaster.readiness.looks import FRESH, budget
from tests.support.lab import Lab, wait_for
from tests.support.web import site_on

PAGE = reverse("admin:taskmaster_deployreadiness_changelist")
STATUS = reverse("admin:taskmaster_deployreadiness_status")
SECRET = "hunter2-secret"


@pytest.fixture
def site(lab: Lab) -> Iterator[Lab]:
    with site_on(lab):
        yield lab


def headline(html: str) -> tuple[str, str]:
    title = re.search(r'id="tm-headline-title">(.*?)</h2>', html, re.S)
    detail = re.search(r'id="tm-headline-detail">(.*?)</p>', html, re.S)
    assert title, html
    return title.group(1).strip(), detail.group(1).strip() if detail else ""


def task_rows(html: str) -> dict[str, str]:
    """Task id -> its classification, as the page's table shows them."""
    rows = re.findall(r'data-task-id="([^"]+)">.*?tm-kind tm-kind-\w+">(\w+)</span>', html, re.S)
    return dict(rows)


def timed_get(client: Client, url: str) -> tuple[str, float]:
    started = time.monotonic()
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode(), time.monotonic() - started


def test_the_page_shows_what_each_worker_runs_as_the_dry_run_classifies_it(
    site: Lab, admin_client: Client
) -> None:
    worker = site.start_worker("w1", concurrency=3)
    site.send("generate_report", 60, kwargs={"customer": SECRET})
    site.send("send_receipt", 25)
    site.send("resize_images", 60)
    site.wait_active(worker.name, count=3)
    before = site.active_queues()

    page = admin_client.get(PAGE).content.decode()

    assert headline(page) == (
        "Blocked by 2 tasks",
        "No hard time limit bounds project.tasks.generate_report: the wait cannot be told.",
    )
    dry_run = site.manage("prepare_deploy", "--dry-run", "--json").report()
    assert task_rows(page) == {t["id"]: t["classification"] for t in dry_run["tasks"]}
    assert sorted(task_rows(page).values()) == ["blocking", "interruptible", "short"]
    row = re.search(rf'data-worker="{re.escape(worker.name)}">(.*?)</tr>', page, re.S)
    assert row and "consuming</span> " + site.queue in row.group(1)
    assert SECRET not in page  # no task arguments unless the settings say so
    assert "amqp://guest:**@127.0.0.1:5672/" in page and "guest:guest" not in page
    for _ in range(2):
        admin_client.get(STATUS)
    assert site.active_queues() == before  # looking never cancels anything
    assert not GateRun.objects.exists()


def test_task_arguments_show_when_the_settings_allow_them(
    site: Lab, admin_client: Client, settings: Any
) -> None:
    settings.TASKMASTER = {**settings.TASKMASTER, "SHOW_TASK_ARGS": True}
    worker = site.start_worker("w1")
    site.send("generate_report", 60, kwargs={"customer": SECRET})
    site.wait_active(worker.name)

    page = admin_client.get(PAGE).content.decode()

    assert SECRET in page
    assert '<th scope="col">arguments</th>' in page


def test_a_short_task_shows_by_when_its_time_limit_ends_it(site: Lab, admin_client: Client) -> None:
    worker = site.start_worker("w1")
    site.send("send_receipt", 25)
    (running,) = site.wait_active(worker.name)

    title, detail = headline(admin_client.get(STATUS).content.decode())

    assert title == "Blocked by 1 task"
    ends = running["time_start"] + 30  # send_receipt's hard time limit
    assert detail.startswith("Expected to clear by ")
    from taskmaster.humanize import clock

    assert clock(ends) in detail


def test_a_broker_that_is_down_is_said_within_the_budget_and_without_its_password(
    lab: Lab, admin_client: Client
) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    with site_on(lab, broker_url=f"amqp://guest:s3cr3t-pw@127.0.0.1:{port}/tm"):
        page, took = timed_get(admin_client, PAGE)

    assert took < budget() + 1
    title, detail = headline(page)
    assert title == "Cannot tell whether a deploy is safe", page
    assert detail.startswith(f"cannot reach the broker at amqp://guest:**@127.0.0.1:{port}/tm")
    assert "s3cr3t-pw" not in page


@pytest.fixture
def silent_broker() -> Iterator[int]:
    """A port that accepts connections and never says a word: a broker that hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()
    for conn in held:
        conn.close()


def test_a_broker_that_does_not_answer_does_not_hang_the_page(
    lab: Lab, admin_client: Client, silent_broker: int
) -> None:
    with site_on(lab, broker_url=f"amqp://guest:guest@127.0.0.1:{silent_broker}//"):
        page, took = timed_get(admin_client, PAGE)
        again, took_again = timed_get(admin_client, STATUS)

    # The second request does not wait a budget of its own for the look still under way.
    assert took < budget() + 1 and took_again < budget()
    assert headline(page)[0] == f"No answer from the broker for {budget():.0f} s"
    assert headline(again)[0].startswith("No answer from the broker for ")
    assert not GateRun.objects.exists()


def test_a_silent_worker_does_not_hold_up_the_others(site: Lab, admin_client: Client) -> None:
    w1 = site.start_worker("w1")
    w2 = site.start_worker("w2", pool="solo", queues=[f"{site.queue}-solo"])
    seen = re.findall(r'data-worker="([^"]+)"', admin_client.get(PAGE).content.decode())
    assert {w1.name, w2.name} <= set(seen)
    site.send("generate_report", 60, queue=f"{site.queue}-solo")
    wait_for(lambda: "project.tasks.generate_report[" in w2.logs())  # solo: it cannot answer
    time.sleep(FRESH)  # the page's last look is no longer fresh

    page, took = timed_get(admin_client, STATUS)

    assert took < budget()
    rows = dict(re.findall(r'data-worker="([^"]+)">(.*?)</tr>', page, re.S))
    assert "consuming</span> " + site.queue in rows[w1.name]
    assert "not answering</span> (answered earlier)" in rows[w2.name]


def test_a_gate_that_fails_before_draining_shows_its_error(
    lab: Lab, client: Client, django_user_model: Any
) -> None:
    from tests.support.web import PASSWORD, staff

    staff(django_user_model, "deployer", "prepare_deploy")
    client.login(username="deployer", password=PASSWORD)
    with site_on(lab, broker_url="amqp://guest:guest@127.0.0.1:1/tm"):
        client.post(reverse("admin:taskmaster_deployreadiness_prepare"))
        from taskmaster.admin import launches

        (launch,) = launches.recent()
        assert launch.done.wait(60)
        page = client.get(STATUS).content.decode()

    assert launch.exit_code == 3
    assert "ended with exit 3 before it drained anything:</strong> cannot reach the broker" in page
    assert json.dumps(launch.report["run_id"]) == "null"
    assert not GateRun.objects.exists()
