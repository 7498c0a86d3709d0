"""TaskPolicy rows: the registry sync, and what each task cost the deploys (blocker stats)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, ProgrammingError
from django.test import override_settings
from pytest_django import DjangoAssertNumQueries

from taskmaster.drain.policy import sync_registry
from taskmaster.gate.registry import Classification, Registry, TaskInfo
from taskmaster.models import GateRun, TaskPolicy
from tests.support.factories import blocker

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
REPORT = "project.tasks.generate_report"
RECEIPT = "project.tasks.send_receipt"
RESIZE = "project.tasks.resize_images"


def task(
    name: str,
    classification: Classification = Classification.BLOCKING,
    *,
    time_limit: float | None = None,
    queue: str = "celery",
) -> TaskInfo:
    return TaskInfo(
        name=name,
        acks_late=classification is Classification.INTERRUPTIBLE,
        reject_on_worker_lost=classification is Classification.INTERRUPTIBLE,
        time_limit=time_limit,
        soft_time_limit=None,
        queue=queue,
        classification=classification,
    )


def registry(*infos: TaskInfo) -> Registry:
    return {info.name: info for info in infos}


DEMO = registry(
    task(REPORT),
    task(RECEIPT, Classification.SHORT, time_limit=30),
    task(RESIZE, Classification.INTERRUPTIBLE),
)


# -- sync -------------------------------------------------------------------------------


def test_sync_creates_one_policy_per_registered_task() -> None:
    result = sync_registry(DEMO, now=NOW)

    assert sorted(result.created) == [REPORT, RESIZE, RECEIPT]
    assert (result.updated, result.retired, result.revived) == ([], [], [])
    rows = {p.name: p for p in TaskPolicy.objects.all()}
    assert set(rows) == {REPORT, RECEIPT, RESIZE}
    receipt = rows[RECEIPT]
    assert (receipt.classification, receipt.acks_late, receipt.time_limit, receipt.queue) == (
        "short",
        False,
        30.0,
        "celery",
    )
    assert rows[RESIZE].classification == "interruptible"
    assert rows[RESIZE].acks_late is True
    assert all(p.first_seen == p.last_seen == NOW and p.retired_at is None for p in rows.values())


def test_sync_updates_a_changed_task_refreshes_last_seen_and_keeps_notes() -> None:
    sync_registry(DEMO, now=NOW)
    TaskPolicy.objects.filter(name=REPORT).update(notes="Owner: billing. Ticket OPS-12.")
    later = NOW + timedelta(days=1)
    # generate_report was made interruptible (acks_late) in the new code.
    fixed = replace(DEMO[REPORT], acks_late=True, classification=Classification.INTERRUPTIBLE)

    result = sync_registry({**DEMO, REPORT: fixed}, now=later)

    assert result.updated == [REPORT]
    assert sorted(result.unchanged) == [RESIZE, RECEIPT]
    assert result.created == result.retired == result.revived == []
    report = TaskPolicy.objects.get(name=REPORT)
    assert (report.classification, report.acks_late) == ("interruptible", True)
    assert report.notes == "Owner: billing. Ticket OPS-12."
    assert (report.first_seen, report.last_seen) == (NOW, later)
    assert TaskPolicy.objects.get(name=RECEIPT).last_seen == later


def test_sync_retires_a_task_no_longer_registered_then_revives_it() -> None:
    sync_registry(DEMO, now=NOW)
    TaskPolicy.objects.filter(name=REPORT).update(notes="Being rewritten in OPS-12.")
    gone = NOW + timedelta(days=1)

    result = sync_registry(registry(DEMO[RECEIPT], DEMO[RESIZE]), now=gone)

    assert result.retired == [REPORT]
    report = TaskPolicy.objects.get(name=REPORT)
    assert report.retired_at == gone
    assert report.last_seen == NOW  # the last sync that saw it registered

    # A second sync without it does not move the retirement date.
    sync_registry(registry(DEMO[RECEIPT], DEMO[RESIZE]), now=gone + timedelta(days=1))
    assert TaskPolicy.objects.get(name=REPORT).retired_at == gone

    back = NOW + timedelta(days=5)
    result = sync_registry(DEMO, now=back)

    assert result.revived == [REPORT]
    assert result.retired == result.created == []
    report = TaskPolicy.objects.get(name=REPORT)
    assert (report.retired_at, report.last_seen, report.first_seen) == (None, back, NOW)
    assert report.notes == "Being rewritten in OPS-12."


def test_sync_is_all_or_nothing() -> None:
    sync_registry(registry(DEMO[REPORT]), now=NOW)
    too_long = task("project.tasks." + "x" * 300)  # does not fit TaskPolicy.name

    with pytest.raises(DataError):
        sync_registry(registry(DEMO[RECEIPT], too_long), now=NOW + timedelta(days=1))

    # Neither the retirement of generate_report nor the creation of send_receipt happened.
    assert list(TaskPolicy.objects.values_list("name", "retired_at")) == [(REPORT, None)]


def test_sync_task_registry_command_records_the_demo_apps_tasks() -> None:
    TaskPolicy.objects.create(
        name="project.tasks.removed_last_month",
        classification="blocking",
        acks_late=False,
        reject_on_worker_lost=False,
        first_seen=NOW,
        last_seen=NOW,
    )
    out = StringIO()

    call_command("sync_task_registry", stdout=out)

    assert out.getvalue() == (
        "Task registry synced: 3 registered task(s): 3 created "
        f"({REPORT}, {RESIZE}, {RECEIPT}), 0 updated, "
        "1 retired (project.tasks.removed_last_month), 0 revived.\n"
    )
    assert dict(TaskPolicy.objects.registered().values_list("name", "classification")) == {
        REPORT: "blocking",
        RECEIPT: "short",
        RESIZE: "interruptible",
    }
    assert list(TaskPolicy.objects.retired().values_list("name", flat=True)) == [
        "project.tasks.removed_last_month"
    ]


def test_sync_task_registry_says_when_the_celery_app_cannot_be_imported() -> None:
    with (
        override_settings(TASKMASTER={"CELERY_APP": "nowhere.celery.app"}),
        pytest.raises(CommandError) as raised,
    ):
        call_command("sync_task_registry", stdout=StringIO())

    assert raised.value.returncode == 2
    assert "cannot find the Celery app; tried nowhere.celery.app (No module" in str(raised.value)
    assert not TaskPolicy.objects.exists()


def test_sync_task_registry_says_when_the_database_is_not_migrated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unmigrated(registry: Registry) -> None:
        raise ProgrammingError('relation "taskmaster_taskpolicy" does not exist')

    monkeypatch.setattr(
        "taskmaster.management.commands.sync_task_registry.sync_registry", unmigrated
    )

    with pytest.raises(CommandError) as raised:
        call_command("sync_task_registry", stdout=StringIO())

    assert raised.value.returncode == 2
    assert str(raised.value) == (
        'cannot record the tasks in the database: relation "taskmaster_taskpolicy" does not '
        "exist (has ./manage.py migrate run?)"
    )


# -- blocker stats ----------------------------------------------------------------------


def gate_run(verdict: str, started_at: datetime) -> GateRun:
    run = GateRun.objects.create(verdict=verdict, is_open=False, timeout=600, interval=20)
    GateRun.objects.filter(pk=run.pk).update(started_at=started_at)  # auto_now_add otherwise
    run.refresh_from_db()
    return run


def stats(name: str) -> tuple[int, int, float | None, datetime | None]:
    row = TaskPolicy.objects.with_blocker_stats(now=NOW).get(name=name)
    return (
        row.deploys_blocked,  # type: ignore[attr-defined]
        row.deploys_blocked_recently,  # type: ignore[attr-defined]
        row.longest_runtime_seconds,  # type: ignore[attr-defined]
        row.last_blocked_at,  # type: ignore[attr-defined]
    )


def test_deploys_blocked_counts_blocked_runs_all_time_and_in_the_last_30_days() -> None:
    sync_registry(DEMO, now=NOW)
    old = gate_run("blocked", NOW - timedelta(days=31))
    blocker(old, REPORT, "t-old", runtime=3600)
    recent = gate_run("blocked", NOW - timedelta(days=29))
    blocker(recent, REPORT, "t-1", runtime=120)
    latest = gate_run("blocked", NOW - timedelta(days=2))
    # Two runs of the task blocked the same deploy: one deploy blocked, not two.
    blocker(latest, REPORT, "t-2", runtime=60)
    blocker(latest, REPORT, "t-3", runtime=30, worker="w2@host")

    assert stats(REPORT) == (3, 2, 3600.0, latest.started_at)


def test_only_blockers_still_blocking_at_a_blocked_verdict_count_as_blocked_deploys() -> None:
    sync_registry(DEMO, now=NOW)
    blocked = gate_run("blocked", NOW - timedelta(days=3))
    blocker(blocked, REPORT, "t-1", runtime=50)
    # It ended before the verdict; another task blocked that deploy.
    other = gate_run("blocked", NOW - timedelta(days=1))
    blocker(other, REPORT, "t-2", runtime=400, at_verdict=False)
    blocker(other, RECEIPT, "t-3")
    # Seen at gates that cleared or were interrupted: not a blocked deploy.
    cleared = gate_run("clear", NOW - timedelta(hours=5))
    blocker(cleared, REPORT, "t-4", runtime=900, at_verdict=False)
    interrupted = gate_run("interrupted", NOW - timedelta(hours=1))
    blocker(interrupted, REPORT, "t-5", runtime=20)

    # The longest runtime is the longest seen at any gate, whatever the verdict.
    assert stats(REPORT) == (1, 1, 900.0, blocked.started_at)
    assert stats(RECEIPT) == (1, 1, 10.0, other.started_at)


def test_a_task_that_never_blocked_has_zero_counts_and_no_dates() -> None:
    sync_registry(DEMO, now=NOW)
    run = gate_run("blocked", NOW - timedelta(days=1))
    blocker(run, REPORT, "t-1")

    assert stats(RESIZE) == (0, 0, None, None)


def test_blocker_stats_take_one_query_for_any_number_of_tasks(
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    sync_registry(DEMO, now=NOW)
    for day in range(5):
        run = gate_run("blocked", NOW - timedelta(days=day))
        blocker(run, REPORT, f"r-{day}")
        blocker(run, RECEIPT, f"s-{day}")

    with django_assert_num_queries(1):
        rows = list(
            TaskPolicy.objects.with_blocker_stats(now=NOW).values_list("name", "deploys_blocked")
        )

    assert dict(rows) == {REPORT: 5, RECEIPT: 5, RESIZE: 0}


def test_non_interruptible_means_short_and_blocking() -> None:
    sync_registry(DEMO, now=NOW)

    assert sorted(TaskPolicy.objects.non_interruptible().values_list("name", flat=True)) == [
        REPORT,
        RECEIPT,
    ]
