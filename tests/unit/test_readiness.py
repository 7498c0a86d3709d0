"""The readiness page's rules, without a broker: its headline, its rows, and its shared looks.

The page's data come from a real dry run in the other tests (test_readiness_page.py); here
the outcome is built by hand, so that each case of the headline reads as one sentence.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskmaster.exits import BrokerUnavailable
from taskmaster.gate.outcome import Outcome, TaskReport, WorkerReport
from taskmaster.gate.rules import Blocker, Verdict
from taskmaster.humanize import clock
from taskmaster.models import GateRun
from taskmaster.readiness.looks import Latest, Look, Looks
from taskmaster.readiness.page import (
    SHOWN_PER_WORKER,
    DrainState,
    drain_state,
    headline,
    totals,
    worker_rows,
)
from tests.support.factories import task_info

NOW = 1_700_000_000.0
AT = datetime.fromtimestamp(NOW, UTC)
W1, W2 = "w1@host", "w2@host"


REGISTRY = {
    "app.receipt": task_info("app.receipt", time_limit=30),
    "app.report": task_info("app.report"),
    "app.resize": task_info("app.resize", acks_late=True),
}


def task(name: str, kind: str, *, worker: str = W1, runtime: float = 10, **kw: Any) -> TaskReport:
    values: dict[str, Any] = {
        "id": f"{name}-{worker}-{runtime}",
        "name": name,
        "worker": worker,
        "state": "active",
        "classification": kind,
        "runtime_seconds": runtime,
        "blocks": kind in ("short", "blocking"),
    }
    return TaskReport(**{**values, **kw})


def blocker_of(t: TaskReport, args: str = "") -> Blocker:
    return Blocker(
        id=t.id,
        name=t.name,
        worker=t.worker,
        state=t.state,
        runtime_seconds=t.runtime_seconds,
        classification=t.classification,
        reason="acknowledged when it started",
        args=args,
    )


def look(tasks: list[TaskReport], **outcome: Any) -> Look:
    workers = outcome.pop("workers", [WorkerReport(W1, ("celery",), False)])
    blockers = outcome.pop("blockers", tuple(blocker_of(t) for t in tasks if t.blocks))
    result = Outcome(
        verdict=Verdict.BLOCKED if blockers else Verdict.CLEAR,
        started_at=AT,
        timeout=600,
        interval=20,
        hold=1800,
        broker="amqp://guest:**@rabbit:5672//",
        dry_run=True,
        workers=workers,
        tasks=tasks,
        blockers=blockers,
        finished_at=AT,
        **outcome,
    )
    return Look(result, NOW - 1, NOW, REGISTRY)


def seen(the_look: Look | None, **kw: Any) -> Latest:
    return Latest(the_look, kw.get("overdue_since"), kw.get("missing", {}))


def title(latest: Latest, **kw: Any) -> str:
    return headline(
        latest, drain=kw.get("drain"), fleet=kw.get("fleet", []), now=NOW + 1, budget=3
    ).title


# -- the headline -------------------------------------------------------------------------


def test_nothing_a_stop_would_lose_is_safe_to_deploy() -> None:
    line = headline(
        seen(look([task("app.resize", "interruptible")])), drain=None, fleet=[], now=NOW, budget=3
    )

    assert (line.tone, line.title) == ("safe", "Safe to deploy")
    assert line.detail == (
        "No worker runs or holds a task that a stop would lose: the 1 task held blocks nothing "
        "now (by kind: 1 interruptible)."
    )


def test_a_far_off_eta_task_of_the_blocking_kind_is_said_apart_from_a_blocker() -> None:
    # Its kind is blocking; due after any gate's deadline, it blocks nothing now.
    later = task("app.report", "blocking", state="scheduled", runtime=None, blocks=False)
    safe = seen(look([later, task("app.resize", "interruptible")]))

    line = headline(safe, drain=None, fleet=[], now=NOW, budget=3)

    assert (line.tone, line.title) == ("safe", "Safe to deploy")
    assert line.detail == (
        "No worker runs or holds a task that a stop would lose: the 2 tasks held block nothing "
        "now (by kind: 1 blocking, 1 interruptible)."
    )


def test_a_blocking_task_blocks_and_the_wait_cannot_be_told() -> None:
    report = task("app.report", "blocking")

    line = headline(seen(look([report])), drain=None, fleet=[], now=NOW, budget=3)

    assert (line.tone, line.title) == ("blocked", "Blocked by 1 task")
    assert line.detail == "No hard time limit bounds app.report: the wait cannot be told."


def test_short_tasks_block_with_the_wait_their_time_limits_say() -> None:
    # Started 10 s and 25 s ago with a 30 s limit: both over within 20 s at the latest.
    tasks = [task("app.receipt", "short", runtime=10), task("app.receipt", "short", runtime=25)]

    line = headline(seen(look(tasks)), drain=None, fleet=[], now=NOW, budget=3)

    assert line.title == "Blocked by 2 tasks"
    assert line.detail == (
        f"Expected to clear by {clock(NOW + 20)}, in 20 s at most, as the tasks' hard time "
        "limits say."
    )


def test_a_worker_that_cannot_be_asked_blocks_too() -> None:
    silent = Blocker(W2, "", W2, "unresponsive", None, "", "does not answer")
    the_look = look([task("app.report", "blocking")])
    the_look = look([task("app.report", "blocking")], blockers=(*the_look.outcome.blockers, silent))

    assert title(seen(the_look)) == "Blocked by 1 task and 1 worker that cannot be asked"


def test_a_broker_that_cannot_be_reached_is_said_not_guessed() -> None:
    failed = look([], failure=BrokerUnavailable("cannot reach the broker at amqp://guest:**@x//"))

    line = headline(seen(failed), drain=None, fleet=[], now=NOW, budget=3)

    assert (line.tone, line.title) == ("unknown", "Cannot tell whether a deploy is safe")
    assert line.detail == "cannot reach the broker at amqp://guest:**@x//"


def test_a_look_past_its_budget_says_the_broker_does_not_answer() -> None:
    earlier = look([task("app.resize", "interruptible")])

    line = headline(seen(earlier, overdue_since=NOW - 7), drain=None, fleet=[], now=NOW, budget=3)

    assert (line.tone, line.title) == ("unknown", "No answer from the broker for 7 s")
    assert line.detail.endswith(f"The last look, at {clock(NOW)}, said: Safe to deploy.")
    assert title(seen(None, overdue_since=NOW - 4)) == "No answer from the broker for 5 s"


def test_a_silent_worker_with_no_worker_answering_blocks_and_has_a_row() -> None:
    solo = Blocker("solo@pod", "", "solo@pod", "silent", None, "", "alive at the broker but …")
    quiet = look([], workers=[], blockers=(solo,))

    line = headline(seen(quiet), drain=None, fleet=[], now=NOW, budget=3)

    assert (line.tone, line.title) == ("blocked", "Blocked by 1 worker that cannot be asked")
    rows = worker_rows(quiet, {}, with_args=False)
    assert [(r.hostname, r.status, r.reason) for r in rows] == [
        ("solo@pod", "silent", "alive at the broker but …")
    ]


def test_no_worker_is_safe_unless_earlier_gates_drained_some() -> None:
    empty = look([], workers=[])

    assert title(seen(empty)) == "Safe to deploy"
    line = headline(seen(empty), drain=None, fleet=[W1, W2], now=NOW, budget=3)
    assert (line.tone, line.title) == ("unknown", "No worker answered")
    assert f"Earlier gates drained {W1}, {W2}" in line.detail


def test_a_drain_in_progress_says_since_when_by_whom_and_the_time_left() -> None:
    drain = DrainState(7, "running", AT, "alice (admin from 10.0.0.5)", left=412.4)

    line = headline(
        seen(look([task("app.report", "blocking")])), drain=drain, fleet=[], now=NOW, budget=3
    )

    assert line.tone == "draining"
    assert line.title == (
        f"Drain in progress since {clock(AT)} by alice (admin from 10.0.0.5), 412 s left"
    )
    assert line.detail == "It waits for 1 task."


def test_a_held_clear_says_deploy_now_and_until_when() -> None:
    held = DrainState(7, "held", AT, "alice", until=AT + timedelta(minutes=30))

    line = headline(seen(None), drain=held, fleet=[], now=NOW, budget=3)

    assert line.tone == "safe"
    assert line.title == (
        f"Deploy cleared by gate run #7: the workers stay drained until "
        f"{clock(AT + timedelta(minutes=30))}"
    )


# -- the rows -----------------------------------------------------------------------------


def test_each_worker_lists_what_blocks_first_and_counts_the_rest() -> None:
    tasks = [task("app.resize", "interruptible", runtime=float(n)) for n in range(12)]
    tasks.append(task("app.receipt", "short", runtime=5, worker=W1))
    tasks.append(task("app.report", "blocking", runtime=3, worker=W1, state="reserved"))
    the_look = look(tasks, workers=[WorkerReport(W1, (), True), WorkerReport(W2, ("q",), False)])

    rows = worker_rows(the_look, {"w3@host": NOW - 60}, with_args=False)

    assert [(r.hostname, r.status, r.drained) for r in rows] == [
        (W1, "answering", True),
        (W2, "answering", False),
        ("w3@host", "missing", False),
    ]
    first = rows[0]
    assert [t.name for t in first.tasks[:3]] == ["app.receipt", "app.report", "app.resize"]
    assert len(first.tasks) == SHOWN_PER_WORKER and first.more == 4
    assert first.counts == (("blocking", 1), ("short", 1), ("interruptible", 12))
    assert first.tasks[0].ends_by == NOW + 25  # started 5 s ago, 30 s limit
    assert first.tasks[1].ends_by is None  # prefetched: not started
    assert totals(the_look.outcome) == (("blocking", 1), ("short", 1), ("interruptible", 12))


def test_task_arguments_show_only_when_the_settings_allow() -> None:
    report = task("app.report", "blocking")
    the_look = look([report], blockers=(blocker_of(report, args="('hunter2',)"),))

    assert worker_rows(the_look, {}, with_args=False)[0].tasks[0].args == ""
    assert worker_rows(the_look, {}, with_args=True)[0].tasks[0].args == "('hunter2',)"


# -- the drain, from its record ------------------------------------------------------------


def run(**fields: Any) -> GateRun:
    values: dict[str, Any] = {
        "pk": 9,
        "started_at": AT,
        "timeout": 600,
        "interval": 20,
        "is_open": True,
        "host": "elsewhere",
        "pid": 1,
        "user": "deploy",
        "snapshot": {W1: [{"name": "celery"}]},
    }
    return GateRun(**{**values, **fields})


def test_a_gate_that_runs_elsewhere_is_draining_with_its_time_left() -> None:
    state = drain_state(run(), AT + timedelta(seconds=100))

    assert (state.kind, state.left, state.by, state.workers) == (
        "running",
        500,
        "deploy@elsewhere (pid 1)",
        (W1,),
    )
    requested = drain_state(run(requested_by="alice", requested_from="10.0.0.5"), AT)
    assert requested.by == "alice (admin from 10.0.0.5)"


def test_an_open_drain_with_a_verdict_or_a_dead_gate_needs_a_resume() -> None:
    incomplete = run(verdict="blocked", restore_problems=[f"{W1} does not answer"])
    assert drain_state(incomplete, AT).kind == "stuck"
    assert W1 in drain_state(incomplete, AT).problem

    import socket

    dead = run(host=socket.gethostname(), pid=2**22 + 12345)  # no such process
    assert drain_state(dead, AT).problem.startswith("its gate (pid 4206649) is gone")


def test_a_clear_verdict_is_held_until_its_lease_ends() -> None:
    until = AT + timedelta(minutes=30)
    state = drain_state(run(is_open=False, verdict="clear", lease_until=until), AT)

    assert (state.kind, state.until) == ("held", until)


# -- the shared look: one look at a time, within a budget --------------------------------------


class SlowLooks:
    """Looks that end when the test says so, counted."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.count = 0

    def __call__(self) -> Look:
        self.count += 1
        self.release.wait(10)
        return look([task("app.resize", "interruptible")])


def test_a_request_waits_for_a_look_no_longer_than_its_budget() -> None:
    looks = SlowLooks()
    shared = Looks(looks)

    started = time.monotonic()
    latest = shared.latest(budget=0.3)

    # It waited its budget, and not for the look (held for 10 s).
    assert 0.25 < time.monotonic() - started < 5
    assert latest.look is None and latest.overdue_since is not None
    again = shared.latest(budget=0.3)  # the same look, still under way: no second one
    assert again.overdue_since == latest.overdue_since and looks.count == 1
    looks.release.set()
    assert shared.latest(budget=2).look is not None


def test_a_fresh_look_is_shared_and_a_stale_one_renewed() -> None:
    looks = SlowLooks()
    looks.release.set()
    fresh, stale = Looks(looks, fresh=300), Looks(looks, fresh=0)  # no race with a clock

    first = fresh.latest(budget=2).look
    assert fresh.latest(budget=2).look is first and looks.count == 1
    renewed = stale.latest(budget=2).look
    assert stale.latest(budget=2).look is not renewed and looks.count == 3


def test_a_worker_seen_earlier_that_stops_answering_is_missed() -> None:
    answers = [[WorkerReport(W1, ("q",), False), WorkerReport(W2, ("q",), False)]]
    answers.append([WorkerReport(W1, ("q",), False)])

    def next_look() -> Look:
        return look([], workers=answers.pop(0))

    shared = Looks(next_look, fresh=0)
    assert shared.latest(budget=2).missing == {}
    assert list(shared.latest(budget=2).missing) == [W2]


def test_a_look_that_fails_with_a_bug_is_said_not_waited_for() -> None:
    def broken() -> Look:
        raise RuntimeError("a bug")

    latest = Looks(broken).latest(budget=2)

    assert latest.look is not None
    assert str(latest.look.outcome.failure) == (
        "the look at the workers failed: RuntimeError('a bug')"
    )


@pytest.mark.parametrize("moment", [NOW, AT])
def test_clock_shows_the_time_of_day(moment: Any) -> None:
    assert clock(moment) == "22:13:20 UTC"


# -- the background gate's command line ------------------------------------------------------


def test_a_gate_from_the_admin_needs_no_manage_py_and_runs_from_anywhere(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from taskmaster.admin.launches import gate_command, gate_environment

    command = gate_command("alice", "10.0.0.5")
    env = gate_environment()

    assert command == [
        sys.executable,
        *("-m", "django", "prepare_deploy", "--settings", "tests.support.settings", "--json"),
        *("--requested-by", "alice", "--requested-from", "10.0.0.5"),
    ]
    root = str(Path(__file__).resolve().parents[2])
    assert root in env["PYTHONPATH"].split(os.pathsep)
    assert not any("site-packages" in entry for entry in env["PYTHONPATH"].split(os.pathsep))
    # From another directory, with that environment, the command finds the project.
    help_run = subprocess.run(
        [*command[:6], "--help"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert help_run.returncode == 0, help_run.stderr
    assert "--dry-run" in help_run.stdout
