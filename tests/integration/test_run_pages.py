"""Gate run history that scales: blockers counted once per task, a run's page in bounded size
however many blockers it recorded, the snapshot as a table, the report behind a disclosure."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from taskmaster.admin.run_page import BLOCKERS_PER_PAGE, REPORT_ITEMS
from taskmaster.drain import records
from taskmaster.gate.rules import Blocker
from taskmaster.models import GateRun, RecordedBlocker, TaskPolicy

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:taskmaster_gaterun_changelist")
BIG = 5_000
SNAPSHOT = {
    "w1@a": [
        {
            "name": "celery",
            "exchange": {"name": "celery", "type": "direct", "durable": True},
            "routing_key": "celery",
            "durable": True,
        },
        {
            "name": "reports",
            "exchange": {"name": "reports", "type": "direct"},
            "routing_key": "reports",
            "durable": True,
            "queue_arguments": {"x-queue-type": "quorum"},
        },
    ],
    "w2@a": [],
}


def page_of(run: GateRun) -> str:
    return reverse("admin:taskmaster_gaterun_change", args=[run.pk])


def seen(task_id: str, name: str, state: str, runtime: float | None = None) -> Blocker:
    return Blocker(task_id, name, "w1@a", state, runtime, "blocking", f"{state}: a reason")


def closed_run(**fields: Any) -> GateRun:
    values: dict[str, Any] = {"timeout": 600, "interval": 20, "is_open": False}
    return GateRun.objects.create(**{**values, **fields})


def test_a_task_seen_prefetched_then_running_is_one_blocker_with_its_states(
    admin_client: Client,
) -> None:
    run = closed_run(verdict="blocked", snapshot=SNAPSHOT)
    log = records.BlockerLog(run)
    at = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    log.record(
        [seen("t-1", "app.report", "reserved"), seen("t-2", "app.export", "scheduled")], at=at
    )
    later = [seen("t-1", "app.report", "active", 5.0), seen("t-2", "app.export", "reserved")]
    log.record(later, at=at + timedelta(seconds=20))
    log.record([seen("t-1", "app.report", "active", 25.0)], at=at + timedelta(seconds=40))
    log.close([seen("t-1", "app.report", "active", 25.0)])
    TaskPolicy.objects.create(
        name="app.report",
        classification="blocking",
        acks_late=False,
        reject_on_worker_lost=False,
        first_seen=at,
        last_seen=at,
    )

    listing = admin_client.get(RUNS)
    run_page = admin_client.get(page_of(run)).content.decode()
    task = TaskPolicy.objects.get(name="app.report")
    task_page = admin_client.get(
        reverse("admin:taskmaster_noninterruptibletask_change", args=[task.pk])
    ).content.decode()

    assert [(r.pk, r.blocker_count) for r in listing.context["cl"].result_list] == [(run.pk, 2)]
    assert f">#{run.pk}</a>" in listing.content.decode()  # the run number, linked
    assert run_page.count("<td>t-1</td>") == 1
    assert "<td>reserved, active</td>" in run_page
    assert "<td>scheduled, reserved</td>" in run_page
    assert task_page.count("<td>t-1</td>") == 1  # the task's page lists it once too
    assert "<td>reserved, active</td>" in task_page


def test_the_snapshot_is_a_table_of_workers_and_queues_and_the_report_is_behind_a_disclosure(
    admin_client: Client,
) -> None:
    report = {"verdict": "clear", "workers": [{"hostname": "w1@a"}], "blockers": []}
    run = closed_run(verdict="clear", snapshot=SNAPSHOT, report=report)

    page = admin_client.get(page_of(run)).content.decode()

    assert (
        "<tr><td>w1@a</td><td>reports</td><td>reports (direct)</td><td>reports</td>"
        "<td>durable, x-queue-type=quorum</td></tr>"
    ) in page
    assert "<tr><td>w2@a</td><td>consumed nothing</td>" in page
    assert '"snapshot"' not in page and "{&quot;name&quot;" not in page  # no raw JSON text
    assert "<details class='tm-report'><summary>Show the report" in page
    assert json.dumps(report, indent=2, sort_keys=True).replace('"', "&quot;") in page


@pytest.fixture
def big_run() -> GateRun:
    """A run that gave up on a backlog: 5,000 blockers (16 running, the rest prefetched) of
    three task names on eight workers, and a report that lists every one of them."""
    started = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    blockers = [
        Blocker(
            f"task-{n:05d}",
            ("app.report", "app.export", "app.sync")[n % 3],
            f"w{n % 8}@host",
            "active" if n < 16 else "reserved",
            float(n) if n < 16 else None,
            "blocking",
            "prefetched by the worker, which will start it and acknowledge it early",
        )
        for n in range(BIG)
    ]
    report = {"verdict": "blocked", "blockers": [b.as_json() for b in blockers], "tasks": []}
    run = closed_run(verdict="blocked", snapshot=SNAPSHOT, report=report)
    RecordedBlocker.objects.bulk_create(
        RecordedBlocker(
            run=run,
            task_id=b.id,
            name=b.name,
            worker=b.worker,
            state=b.state,
            states=b.state if b.state == "reserved" else "reserved, active",
            classification=b.classification,
            reason=b.reason,
            runtime_seconds=b.runtime_seconds,
            first_seen=started,
            last_seen=started + timedelta(minutes=10),
            at_verdict=True,
        )
        for b in blockers
    )
    return run


def test_a_run_with_5000_blockers_is_one_small_page_of_groups_and_rows(
    admin_client: Client, big_run: GateRun, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(20):  # bounded: not one query per blocker
        response = admin_client.get(page_of(big_run))

    assert response.status_code == 200
    assert len(response.content) < 1_000_000
    page = response.content.decode()
    assert "Blockers: 5000" in page
    groups = response.context["blocker_groups"]
    assert [(g.name, g.count, g.states, g.workers, g.at_verdict) for g in groups] == [
        ("app.export", 1667, (("active", 5), ("reserved", 1662)), 8, 1667),
        ("app.report", 1667, (("active", 6), ("reserved", 1661)), 8, 1667),
        ("app.sync", 1666, (("active", 5), ("reserved", 1661)), 8, 1666),
    ]
    assert page.count("<td>task-") == BLOCKERS_PER_PAGE
    assert "Each blocker (page 1 of 50)" in page
    assert f"{BIG - REPORT_ITEMS:,} list items left out" in page


def test_the_pages_of_a_big_run_reach_every_blocker(admin_client: Client, big_run: GateRun) -> None:
    last = admin_client.get(f"{page_of(big_run)}?blockers=50").content.decode()
    beyond = admin_client.get(f"{page_of(big_run)}?blockers=51").content.decode()

    assert "Each blocker (page 50 of 50)" in last
    assert last.count("<td>task-") == BLOCKERS_PER_PAGE
    assert "Each blocker (page 50 of 50)" in beyond  # out of range: the last page
    assert "?blockers=49#tm-run-blockers" in last


def test_the_whole_report_is_a_download(admin_client: Client, big_run: GateRun) -> None:
    url = reverse("admin:taskmaster_gaterun_report", args=[big_run.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="gate-run-{big_run.pk}.json"'
    assert len(json.loads(response.content)["blockers"]) == BIG
    assert (
        admin_client.get(reverse("admin:taskmaster_gaterun_report", args=[999])).status_code == 404
    )


def test_the_run_list_reads_no_report(
    admin_client: Client, big_run: GateRun, django_assert_max_num_queries: Any
) -> None:
    closed_run(verdict="clear")

    with django_assert_max_num_queries(8):
        response = admin_client.get(RUNS)

    assert len(response.content) < 100_000  # a list, not 27 reports
    assert [r.blocker_count for r in response.context["cl"].result_list] == [0, BIG]
    assert "2: w1@a, w2@a" in response.content.decode()
