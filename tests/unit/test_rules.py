"""Unit tests of the gate's rules, on replies recorded from a real RabbitMQ worker.

``snapshots/one_worker_mixed-celery<version>.json``, one per supported Celery, read with the
Celery that runs the tests, was recorded by ``make snapshots`` (tests/support/record_snapshots.py)
from ``rec@lab`` (prefork, concurrency 2) running generate_report (early ack) and resize_images
(acks_late), with generate_report, resize_images and send_receipt prefetched and a send_receipt
held for its ETA (+300 s).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from taskmaster.cluster.replies import inspection_from_replies
from taskmaster.gate.inspection import Inspection
from taskmaster.gate.registry import Classification
from taskmaster.gate.rules import Gate, Verdict
from tests.support.factories import task_info
from tests.support.record_snapshots import snapshot_path

SNAPSHOT_PATH = snapshot_path()
assert SNAPSHOT_PATH.exists(), f"no recording for this Celery: make snapshots ({SNAPSHOT_PATH})"
SNAPSHOT = json.loads(SNAPSHOT_PATH.read_text())
WORKER = "rec@lab"
NOW = SNAPSHOT["recorded_at"]


REGISTRY = {
    "project.tasks.generate_report": task_info("project.tasks.generate_report"),
    "project.tasks.resize_images": task_info("project.tasks.resize_images", acks_late=True),
    "project.tasks.send_receipt": task_info("project.tasks.send_receipt", time_limit=30),
}


def recorded(**replace: Any) -> Inspection:
    replies = {key: SNAPSHOT[key] for key in ("active", "reserved", "scheduled")}
    replies.update(replace)
    return inspection_from_replies(**replies)


def gate(timeout: float = 600, registry: Any = None) -> Gate:
    g = Gate(
        REGISTRY if registry is None else registry,
        started_at=NOW - 10,
        timeout=timeout,
        interval=20,
    )
    g.admit(SNAPSHOT["active_queues"])
    return g


def states(blockers: Any) -> list[tuple[str, str]]:
    return sorted((b.name.rsplit(".", 1)[-1], b.state) for b in blockers)


def test_recorded_snapshot_is_read_whole() -> None:
    inspection = recorded()
    assert inspection.answered == {WORKER}
    assert sorted((t.state, t.acknowledged) for t in inspection.tasks) == [
        ("active", False),
        ("active", True),
        ("reserved", False),
        ("reserved", False),
        ("reserved", False),
        ("scheduled", False),
    ]


def test_blockers_follow_the_design_table() -> None:
    blockers = gate().blockers(recorded(), {}, now=NOW)
    # The running early-ack task, and the two prefetched tasks that are not acks_late; not
    # the running acks_late task (acknowledged: false), the prefetched acks_late one, or the
    # ETA task due after the deadline (recorded +300 s, deadline +590 s: it *is* due before).
    assert states(blockers) == [
        ("generate_report", "active"),
        ("generate_report", "reserved"),
        ("send_receipt", "reserved"),
        ("send_receipt", "scheduled"),
    ]
    active = next(b for b in blockers if b.state == "active")
    assert active.classification == "blocking"
    (started,) = [t["time_start"] for t in SNAPSHOT["active"][WORKER] if t["acknowledged"]]
    assert active.runtime_seconds == pytest.approx(NOW - started)
    short = next(b for b in blockers if b.state == "reserved" and "receipt" in b.name)
    assert short.classification == "short"
    assert "time_limit 30 s" in short.reason


def test_eta_task_due_after_the_deadline_does_not_block() -> None:
    blockers = gate(timeout=60).blockers(recorded(), {}, now=NOW)
    assert ("send_receipt", "scheduled") not in states(blockers)


def test_runtime_flag_beats_the_registry_for_running_tasks() -> None:
    # The deployer's code says generate_report is acks_late, but the worker runs code that
    # acknowledged it on start: the worker's flag is the truth.
    registry = dict(REGISTRY)
    registry["project.tasks.generate_report"] = task_info(
        "project.tasks.generate_report", acks_late=True
    )
    blockers = gate(registry=registry).blockers(recorded(), {}, now=NOW)
    assert ("generate_report", "active") in states(blockers)
    assert ("generate_report", "reserved") not in states(blockers)


def test_unknown_task_prefetched_blocks() -> None:
    blockers = gate(registry={}).blockers(
        recorded(active={WORKER: []}, scheduled={WORKER: []}), {}, now=NOW
    )
    assert {b.classification for b in blockers} == {str(Classification.UNKNOWN)}
    assert len(blockers) == 3


def test_worker_that_does_not_answer_is_a_blocker() -> None:
    g = gate()
    g.admit({"w2@lab": [{"name": "celery"}]})
    blockers = g.blockers(recorded(), {}, now=NOW)
    assert ("w2@lab", "unresponsive") in [(b.worker, b.state) for b in blockers]


def test_worker_still_consuming_is_a_blocker() -> None:
    empty = recorded(active={WORKER: []}, reserved={WORKER: []}, scheduled={WORKER: []})
    decision = gate().decide(empty, {WORKER: {"rec-q"}}, now=NOW)
    assert decision.verdict is None
    assert [(b.state, b.reason) for b in decision.blockers] == [
        ("consuming", "still consumes rec-q: not drained")
    ]


def test_verdicts_over_time() -> None:
    g = gate(timeout=30)
    empty = recorded(active={WORKER: []}, reserved={WORKER: []}, scheduled={WORKER: []})
    assert g.decide(empty, {}, now=NOW).verdict is Verdict.CLEAR
    waiting = g.decide(recorded(), {}, now=NOW)
    assert waiting.verdict is None
    assert waiting.wait_seconds == 20
    near_deadline = g.decide(recorded(), {}, now=g.deadline - 5)
    assert near_deadline.wait_seconds == pytest.approx(5)
    assert g.decide(recorded(), {}, now=g.deadline).verdict is Verdict.BLOCKED


def test_joining_workers_are_recorded_once() -> None:
    g = gate()
    joined = g.newcomers({WORKER: [], "w2@lab": [{"name": "b"}]})
    assert list(joined) == ["w2@lab"]
    g.admit(joined)
    assert g.snapshot[WORKER] == SNAPSHOT["active_queues"][WORKER]  # not overwritten
    assert g.still_consuming({"w2@lab": [{"name": "b"}, {"name": "other"}]}) == {"w2@lab": {"b"}}


def test_unresponsive_worker_names_the_tasks_it_was_last_seen_holding() -> None:
    g = gate()
    g.decide(recorded(), {}, now=NOW)  # the worker answers once...
    silent = Inspection(answered=frozenset(), tasks=())
    (blocker,) = g.decide(silent, {}, now=NOW + 20).blockers  # ...then stops answering
    assert (blocker.worker, blocker.state) == (WORKER, "unresponsive")
    (running,) = [t["id"] for t in SNAPSHOT["active"][WORKER] if t["acknowledged"]]
    assert running in " ".join(blocker.last_seen)
    assert blocker.as_json()["last_seen_tasks"] == list(blocker.last_seen)


def test_a_worker_that_left_cleanly_is_no_blocker_until_it_answers_again() -> None:
    g = gate()
    g.leave(WORKER)
    silent = Inspection(answered=frozenset(), tasks=())
    assert g.decide(silent, {}, now=NOW).verdict is Verdict.CLEAR
    assert g.newcomers({WORKER: []}) == {}  # restarted under the same name: back in the drain
    assert g.workers == [WORKER]
    assert g.snapshot[WORKER] == SNAPSHOT["active_queues"][WORKER]  # recorded queues kept


def test_a_worker_another_drain_holds_is_no_newcomer() -> None:
    g = gate()
    g.elsewhere.add("w2@lab")
    assert g.newcomers({"w2@lab": [{"name": "b"}], "w3@lab": []}) == {"w3@lab": []}


def test_duplicate_node_names_block() -> None:
    g = gate()
    g.duplicates = {WORKER}
    empty = recorded(active={WORKER: []}, reserved={WORKER: []}, scheduled={WORKER: []})
    assert [(b.worker, b.state) for b in g.decide(empty, {}, now=NOW).blockers] == [
        (WORKER, "duplicate")
    ]


def test_a_slow_poll_moves_the_last_poll_earlier_so_the_gate_ends_at_its_deadline() -> None:
    g = gate(timeout=30)
    assert g.decide(recorded(), {}, now=g.deadline - 5, poll_seconds=2).wait_seconds == 3
    last = g.decide(recorded(), {}, now=g.deadline - 1.5, poll_seconds=2)
    assert last.verdict is Verdict.BLOCKED  # a poll now would end past the deadline


def test_task_arguments_are_shown_once_and_bounded() -> None:
    """Active and reserved replies carry the client's reprs (strings: shown as they are, not
    quoted again); scheduled ones carry the values (shown as a bounded repr)."""
    inspection = inspection_from_replies(
        active={WORKER: [{"id": "a", "name": "t", "args": "([0, 1],)", "kwargs": "{'to': 'x'}"}]},
        reserved={WORKER: []},
        scheduled={
            WORKER: [
                {
                    "eta": "2026-11-21T10:00:00+00:00",
                    "request": {"id": "s", "name": "t", "args": [list(range(1000))], "kwargs": {}},
                }
            ]
        },
    )
    running, due = inspection.tasks

    assert running.args == "([0, 1],) {'to': 'x'}"
    assert due.args == "[[0, 1, 2, 3, 4, 5, ...]]"
