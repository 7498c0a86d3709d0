"""The predicted clear time, --fail-fast's rule and the selective scope: pure logic."""

from __future__ import annotations

from typing import Any

import pytest

from taskmaster.gate.forecast import Forecast, expected_clear, hopeless
from taskmaster.gate.rules import Blocker, Gate
from taskmaster.gate.scope import Scope
from tests.support.factories import task_info

NOW = 1_700_000_000.0


REGISTRY = {
    "short": task_info("short", time_limit=30),
    "long": task_info("long", time_limit=600),
    "open": task_info("open"),
}


def blocker(name: str, state: str, worker: str = "w1", **kw: Any) -> Blocker:
    values: dict[str, Any] = {
        "id": f"{name}-{state}-{worker}-{kw.get('eta', '')}",
        "name": name,
        "worker": worker,
        "state": state,
        "runtime_seconds": None,
        "classification": "short",
        "reason": "",
    }
    values.update(kw)
    return Blocker(**values)


def test_a_running_task_ends_by_its_start_plus_its_time_limit() -> None:
    running = blocker("short", "active", runtime_seconds=10)
    assert expected_clear([running], REGISTRY, now=NOW) == NOW + 20


def test_prefetched_tasks_count_one_after_another_behind_the_running_ones() -> None:
    blockers = [
        blocker("short", "active", runtime_seconds=10),  # ends at +20
        blocker("short", "reserved"),  # then +30
        blocker("short", "reserved"),  # then +30
        blocker("long", "reserved", worker="w2"),  # alone on w2: +600
    ]
    assert expected_clear(blockers, REGISTRY, now=NOW) == NOW + 600
    assert expected_clear(blockers[:3], REGISTRY, now=NOW) == NOW + 80


def test_an_eta_task_ends_by_its_eta_plus_its_time_limit() -> None:
    due = blocker("short", "scheduled", eta=NOW + 100)
    assert expected_clear([due], REGISTRY, now=NOW) == NOW + 130


@pytest.mark.parametrize(
    "unbounded",
    [
        blocker("open", "active", runtime_seconds=5),  # no time limit
        blocker("gone.task", "reserved"),  # not in the deployer's registry
        blocker("", "unresponsive", id="w2", classification=""),  # a silent worker
    ],
)
def test_one_unbounded_blocker_means_no_prediction(unbounded: Blocker) -> None:
    assert expected_clear([blocker("short", "reserved"), unbounded], REGISTRY, now=NOW) is None


def test_fail_fast_gives_up_on_unbounded_tasks_older_than_the_time_left() -> None:
    old = blocker("open", "active", runtime_seconds=300)
    young = blocker("open", "active", runtime_seconds=30, worker="w2")
    bounded_old = blocker("long", "active", runtime_seconds=500)
    deadline = NOW + 120

    assert hopeless([old, young, bounded_old], REGISTRY, deadline=deadline, now=NOW) == [old]


def test_foresight_says_each_prediction_once_and_when_the_deadline_comes_first() -> None:
    gate = Gate(REGISTRY, started_at=NOW - 5, timeout=15, interval=1)
    forecast = Forecast(gate, fail_fast=False, redelivery={})
    running = (blocker("short", "active", runtime_seconds=10),)

    notes, give_up = forecast.look(running, now=NOW)
    again, _ = forecast.look(running, now=NOW + 1)

    assert not give_up
    assert notes == [
        "clear expected by 22:13:40 UTC, in 20 s, after the deadline (22:13:30 UTC): unless the "
        "tasks end sooner, this gate ends blocked (--timeout 25 would be long enough)"
    ]
    assert again == []  # the same prediction is not said twice


@pytest.mark.parametrize(
    ("scope", "worker", "queues", "admitted"),
    [
        (Scope(), "w1@pod-a", [], True),
        (Scope(workers=("*@pod-a",)), "w1@pod-a", ["celery"], True),
        (Scope(workers=("*@pod-a",)), "w1@pod-b", ["celery"], False),
        (Scope(queues=("v41",)), "w1@a", ["celery", "v41"], True),
        (Scope(queues=("v41",)), "w1@a", ["v42"], False),
        (Scope(workers=("*@a", "*@b"), queues=("v41",)), "w1@b", ["v41"], True),
        (Scope(workers=("*@a",), queues=("v41",)), "w1@a", ["v42"], False),  # must match both
    ],
)
def test_a_selective_scope(scope: Scope, worker: str, queues: list[str], admitted: bool) -> None:
    assert scope.admits(worker, queues) is admitted
