"""The database side of a run at size: a poll with 5,000 held tasks costs a few queries."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskmaster.drain import records
from taskmaster.drain.records import BlockerLog
from taskmaster.gate.rules import Blocker
from taskmaster.models import RECENT_WINDOW, GateRun, RecordedBlocker, Worker

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


def held(count: int) -> list[Blocker]:
    return [
        Blocker(
            id=f"task-{n}",
            name="app.tasks.export",
            worker=f"w{n % 2}@host",
            state="reserved",
            runtime_seconds=None,
            classification="blocking",
            reason="prefetched by the worker, which will start it and acknowledge it early",
        )
        for n in range(count)
    ]


@pytest.mark.django_db(transaction=True)  # no test transaction: its savepoints would count
def test_a_poll_with_5000_held_tasks_records_them_in_a_bounded_number_of_queries(
    django_assert_max_num_queries: Any, django_assert_num_queries: Any
) -> None:
    run = GateRun.objects.create(timeout=600, interval=20)
    log = BlockerLog(run)
    blockers = held(5000)

    with django_assert_max_num_queries(8):  # BEGIN, bulk inserts of a thousand rows, COMMIT
        log.record(blockers, at=T0)
    with django_assert_num_queries(0):  # the same picture: nothing to write
        log.record(blockers, at=T0 + timedelta(seconds=20))
    # 100 ended; 10 of the others started running.
    started = [replace(b, state="active", runtime_seconds=5.0) for b in blockers[100:110]]
    later = started + blockers[110:]
    with django_assert_max_num_queries(8):
        log.record(later, at=T0 + timedelta(seconds=40))
    with django_assert_max_num_queries(14):
        log.close(later)

    rows = RecordedBlocker.objects.filter(run=run)
    assert rows.count() == 5000  # once per task, whatever its states
    assert rows.filter(at_verdict=True).count() == 4900
    ended = rows.get(task_id="task-0")
    assert (ended.last_seen, ended.at_verdict) == (T0 + timedelta(seconds=20), False)
    running = rows.get(task_id="task-100")
    assert (running.states, running.state, running.runtime_seconds) == (
        "reserved, active",
        "active",
        5.0,
    )
    assert running.last_seen == T0 + timedelta(seconds=40)


def declared(*names: str) -> list[dict[str, Any]]:
    return [{"name": name} for name in names]


@pytest.mark.django_db(transaction=True)
def test_the_roster_keeps_each_workers_last_queues_and_costs_one_query_when_nothing_changed(
    django_assert_num_queries: Any,
) -> None:
    records.remember_workers({"w1@a": declared("celery", "reports"), "w2@a": declared("celery")})
    # Drained, w1 consumes nothing: the roster keeps what it consumed before.
    with django_assert_num_queries(1):
        records.remember_workers({"w1@a": [], "w2@a": declared("celery")})

    assert Worker.objects.known().roster() == {"w1@a": {"celery", "reports"}, "w2@a": {"celery"}}


@pytest.mark.django_db(transaction=True)
def test_a_worker_the_broker_says_is_gone_leaves_the_roster_until_it_is_heard_again() -> None:
    records.remember_workers({"w1@a": declared("celery"), "w2@a": declared("celery")})

    records.forget_workers(["w2@a"])
    assert set(Worker.objects.known().roster()) == {"w1@a"}
    assert Worker.objects.get(hostname="w2@a").absent_since is not None

    records.remember_workers({"w2@a": declared("celery")})
    assert set(Worker.objects.known().roster()) == {"w1@a", "w2@a"}


@pytest.mark.django_db(transaction=True)
def test_a_worker_not_heard_for_a_month_is_no_longer_asked_about() -> None:
    records.remember_workers({"w1@a": declared("celery")})
    Worker.objects.update(last_seen=datetime.now(UTC) - RECENT_WINDOW - timedelta(1))

    assert Worker.objects.known().roster() == {}
