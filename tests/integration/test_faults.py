"""The gate under faults: broker loss, odd queues, workers that come and go, the gate's death.

Every test uses the real RabbitMQ (or Redis where said), real ``celery worker`` processes and
the gate as a subprocess. The broker itself is never restarted: a ``Proxy`` between the gate
and the broker is cut instead.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from taskmaster.models import GateRun, RecordedBlocker
from tests.support.lab import Lab, Result, drained, finish, read_until, wait_for
from tests.support.proxy import Proxy

FAST = ("--interval", "1")


def declarations(lab: Lab, node: str) -> dict[str, dict[str, Any]]:
    """A worker's consumers with their full declarations, by queue name."""
    replies = lab.app.control.inspect(destination=[node], timeout=2.0).active_queues() or {}
    return {q["name"]: q for q in replies.get(node, [])}


def declared_the_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert sorted(after) == sorted(before)
    for name, queue in before.items():
        for key in ("queue_arguments", "durable", "auto_delete", "exclusive", "routing_key"):
            assert after[name][key] == queue[key], (name, key)
        assert after[name]["exchange"]["name"] == queue["exchange"]["name"], name
        assert after[name]["exchange"]["type"] == queue["exchange"]["type"], name


# -- broker trouble mid-drain --------------------------------------------------------


@pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)
def test_broker_lost_mid_drain_reconnects_and_still_restores(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-b"])
    before = lab.active_queues()
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)
    proxy = Proxy(lab.broker_url)
    report = tmp_path / "report.json"
    try:
        gate = lab.start_gate(
            *FAST, "--timeout", "25", "--report", str(report), broker_url=proxy.url
        )
        wait_for(lambda: drained(lab, w1.name))
        proxy.cut()
        # The broker stays away until the gate's own calls have seen it go: what follows is
        # the gate's reconnect (with backoff), not a background thread's failure.
        seen = read_until(gate, "lost the broker")
        proxy.restore()
        seen += read_until(gate, "broker back")
        result = finish(gate)
    finally:
        proxy.close()

    assert result.code == 1, seen + result.text
    notes = json.loads(report.read_text())["notes"]
    assert any(note.startswith("lost the broker") for note in notes), notes
    assert any(note.startswith("broker back") for note in notes), notes
    assert json.loads(report.read_text())["restored"] is True
    assert lab.active_queues() == before
    assert "Traceback" not in seen + result.text


def test_broker_away_past_the_deadline_exits_5_and_resume_restores(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    before = lab.active_queues()
    lab.send("generate_report", 60)
    wait_for(lambda: lab.active_tasks(w1.name))
    proxy = Proxy(lab.broker_url)
    try:
        gate = lab.start_gate(*FAST, "--timeout", "6", "--json", broker_url=proxy.url)
        wait_for(lambda: drained(lab, w1.name, w2.name))
        proxy.cut()
        result = finish(gate)

        assert result.code == 5, result.text
        report = json.loads(result.out)
        assert report["restored"] is False
        problem = " ".join(report["restore_problems"])
        assert w1.name in problem and w2.name in problem  # who may still be drained
        assert "resume_consumers" in result.err
        assert "Traceback" not in result.text
        assert drained(lab, w1.name, w2.name)
        assert GateRun.objects.open().exists()

        proxy.restore()
        resumed = lab.manage("resume_consumers", broker_url=proxy.url)
    finally:
        proxy.close()
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == before
    assert not GateRun.objects.open().exists()


# -- restore is verified, never assumed ----------------------------------------------


def test_queues_with_arguments_come_back_declared_the_same(lab: Lab) -> None:
    w1 = lab.start_worker("w1", queues=[], settings="tests.support.fault_settings")
    w2 = lab.start_worker("w2", queues=[], settings="tests.support.fault_settings")
    before = {w.name: declarations(lab, w.name) for w in (w1, w2)}
    assert f"{w1.name}.dq2" in before[w1.name]
    assert any(name.startswith("bcast.") for name in before[w1.name])
    assert before[w1.name][f"{lab.queue}-quorum"]["queue_arguments"] == {"x-queue-type": "quorum"}
    lab.send("generate_report", 60)
    wait_for(lambda: lab.active_tasks(w1.name) or lab.active_tasks(w2.name))

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "3")

    assert result.code == 1, result.text
    for worker in (w1, w2):
        # Exactly its own queues: its own dq2 and bcast queue, never the other worker's.
        declared_the_same(before[worker.name], declarations(lab, worker.name))
        assert "PRECONDITION_FAILED" not in worker.logs()


def test_resume_declares_queues_a_restarted_worker_does_not_know(lab: Lab) -> None:
    w1 = lab.start_worker("w1", queues=[], settings="tests.support.fault_settings")
    before = declarations(lab, w1.name)
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)
    gate = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, w1.name))
    gate.kill()
    gate.wait()
    # The worker is restarted with plain settings: it knows none of the argumented queues,
    # so resume_consumers must pass each declaration in full or RabbitMQ refuses it.
    w1.kill()
    restarted = lab.start_worker("w1", queues=[lab.queue])

    result = lab.manage("resume_consumers")

    assert result.code == 0, result.text
    after = declarations(lab, restarted.name)
    for name in (f"{lab.queue}-prio", f"{lab.queue}-ttl", f"{lab.queue}-quorum"):
        assert after[name]["queue_arguments"] == before[name]["queue_arguments"], name
    assert f"{w1.name}.dq2" in after
    assert "PRECONDITION_FAILED" not in restarted.logs()


# -- workers that come and go --------------------------------------------------------


def test_worker_shut_down_cleanly_mid_drain_is_not_a_blocker(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    lab.send("send_receipt", 8)
    lab.wait_active(w1.name)
    gate = lab.start_gate(*FAST, "--timeout", "60", "--json")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    w2.signal(signal.SIGTERM)  # a warm shutdown: the worker says worker-offline

    result = finish(gate)

    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["verdict"] == "clear"
    assert report["gone"] == [w2.name]
    assert any(f"{w2.name} shut down cleanly" in note for note in report["notes"])


def test_worker_killed_mid_drain_is_reported_with_its_tasks(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    task_id = lab.send("generate_report", 60)
    lab.wait_active(w1.name)
    gate = lab.start_gate(*FAST, "--timeout", "6", "--json")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    # A poll has seen the task on w1 (and recorded it), so the gate knows what it held.
    wait_for(lambda: RecordedBlocker.objects.filter(task_id=task_id).exists())
    w1.kill()

    result = finish(gate)

    assert result.code == 5, result.text  # w1 cannot be restored: it is gone
    report = json.loads(result.out)
    (dead,) = [b for b in report["blockers"] if b["worker"] == w1.name]
    assert dead["state"] == "unresponsive"
    assert any(task_id in t for t in dead["last_seen_tasks"])  # what a deploy would lose

    resumed = lab.manage("resume_consumers", "--ignore-missing")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues([w2.name]) == {w2.name: [f"{lab.queue}-2"]}
    assert not GateRun.objects.open().exists()


def test_solo_worker_busy_with_a_task_is_an_unresponsive_blocker(lab: Lab) -> None:
    w1 = lab.start_worker("w1", pool="solo", concurrency=1)
    task_id = lab.send("generate_report", 25, countdown=10)  # held by w1 until its ETA

    gate = lab.start_gate(*FAST, "--timeout", "16", "--json")
    # Drained: the gate has heard w1, before the task started (a busy solo answers nothing).
    wait_for(lambda: drained(lab, w1.name))
    result = finish(gate)

    assert result.code == 5, result.text
    report = json.loads(result.out)
    assert [(b["worker"], b["state"]) for b in report["blockers"]] == [(w1.name, "unresponsive")]
    assert any(task_id in t for t in report["blockers"][0]["last_seen_tasks"])
    wait_for(lambda: lab.ping(w1.name), timeout=40)  # the task is done: it answers again
    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == {w1.name: [lab.queue]}


# On RabbitMQ the second worker cannot start at all: its control queue is exclusive, and
# RabbitMQ refuses it (RESOURCE_LOCKED). On Redis both run and both answer every broadcast.
# (On the filesystem transport both run but share one control queue, and one of them may
# answer every call: docs/reliability.md says so.)
@pytest.mark.parametrize("lab", ["redis"], indirect=True)
def test_two_workers_with_one_node_name_are_a_configuration_error(lab: Lab) -> None:
    lab.start_worker("w1")
    twin = lab.start_worker("w1", queues=[f"{lab.queue}-twin"], wait=False)
    wait_for(lambda: " ready." in twin.logs(), timeout=40)
    # Both answer as one name (Celery stops at one reply for one destination: ask for two).
    ping = {"destination": [twin.name], "reply": True, "timeout": 1.0, "limit": 2}
    wait_for(lambda: len(lab.app.control.broadcast("ping", **ping)) == 2)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10")

    assert result.code == 2, result.text
    assert f"2 workers answer as {twin.name}" in result.text
    assert "Traceback" not in result.text
    # Nothing was touched: both still consume (one reply per worker would show it).
    assert lab.active_queues([twin.name])[twin.name] != []
    assert not GateRun.objects.exists()  # refused before the drain was opened


# -- the gate's own death ------------------------------------------------------------


def kill_gate_at(lab: Lab, phase: str, gate: subprocess.Popen[str]) -> None:
    if phase == "before cancel":
        wait_for(GateRun.objects.exists, step=0.02)
    else:
        marker = {
            "mid-cancel": "draining",
            "mid-poll": "poll:",
            "mid-restore": "restoring consumers",
        }
        read_until(gate, marker[phase])
    gate.kill()
    gate.wait()


@pytest.mark.parametrize("phase", ["before cancel", "mid-cancel", "mid-poll", "mid-restore"])
def test_gate_killed_at_any_point_leaves_a_record_that_resume_restores(
    lab: Lab, phase: str
) -> None:
    queues = [lab.queue, *(f"{lab.queue}-{n}" for n in range(6))]
    w1 = lab.start_worker("w1", queues=queues)
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-x", f"{lab.queue}-y"])
    before = lab.active_queues()
    lab.send("generate_report", 60)
    wait_for(lambda: lab.active_tasks(w1.name))
    gate = lab.start_gate(*FAST, "--timeout", "3" if phase == "mid-restore" else "120")
    kill_gate_at(lab, phase, gate)

    # A new gate refuses while the killed one's drain is open, and says how to recover.
    second: Result = lab.manage("prepare_deploy", *FAST, "--timeout", "5")
    assert second.code == 4, second.text
    run = GateRun.objects.open().get()
    assert f"gate run #{run.pk}" in second.err
    assert f"process {run.pid} is gone" in second.err
    assert "./manage.py resume_consumers" in second.err

    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == before
    assert w2.name in before
    assert not GateRun.objects.open().exists()
