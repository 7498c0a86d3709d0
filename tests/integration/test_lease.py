"""The drain lease, held by real workers (``taskmaster/tasks.py``), against real RabbitMQ.

A gate that disappears, or a clear verdict whose deploy never comes, must not leave the
fleet drained: each worker puts its own consumers back when its lease runs out.
"""

from __future__ import annotations

import json
import time

from taskmaster.models import GateRun
from tests.conftest import ALL_BROKERS
from tests.support.lab import Lab, drained, wait_for

FAST = ("--interval", "1")


def test_workers_of_a_killed_gate_take_their_consumers_back_when_the_lease_runs_out(
    lab: Lab,
) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    w2 = lab.start_worker("w2")
    before = lab.active_queues()
    lab.send("generate_report", 120)
    lab.wait_active(w1.name)  # w1 runs it: the gate waits, renewing the lease every poll
    gate = lab.start_gate(*FAST, "--timeout", "300")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    assert {n: lease["run"] for n, lease in lab.leases([w1.name, w2.name]).items()} == {
        w1.name: GateRun.objects.get().pk,
        w2.name: GateRun.objects.get().pk,
    }

    gate.kill()  # SIGKILL: no restore, no verdict
    gate.wait()
    killed_at = time.monotonic()
    time.sleep(5)
    assert drained(lab, w1.name, w2.name)  # the lease still holds them...
    wait_for(lambda: lab.active_queues() == before, timeout=75, step=1)
    # ...until max(60 s, 3 x interval) after the last renewal, not much later.
    assert 50 < time.monotonic() - killed_at < 70
    assert lab.leases([w1.name, w2.name]) == {w1.name: {}, w2.name: {}}
    assert "the drain lease of gate run" in w1.logs() and "ran out" in w1.logs()

    # The record still says open: the next gate says so, and resume_consumers closes it.
    second = lab.manage("prepare_deploy", *FAST, "--timeout", "5")
    assert second.code == 4, second.text
    assert "its lease ran out at" in second.err
    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert not GateRun.objects.open().exists()


def test_a_clear_verdict_holds_the_drain_until_the_hold_runs_out(lab: Lab) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    before = lab.active_queues()

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10", "--hold", "6", "--json")

    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["hold"] == 6.0
    assert report["hold_until"] is not None
    assert report["workers"] == [
        {"hostname": w1.name, "queues": sorted(before[w1.name]), "lease": True}
    ]
    assert drained(lab, w1.name)  # the deploy may stop it now...
    assert 0 < lab.leases([w1.name])[w1.name]["expires_in"] <= 6
    # ...and when no deploy comes, it consumes again by itself.
    wait_for(lambda: lab.active_queues() == before, timeout=15, step=0.5)
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open, run.hold) == ("clear", False, 6.0)


def test_resume_consumers_after_a_clear_releases_the_hold_at_once(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    before = lab.active_queues()
    assert lab.manage("prepare_deploy", *FAST, "--timeout", "10").code == 0
    assert lab.leases([w1.name])[w1.name]["expires_in"] > 1000  # the default hold: 1800 s

    resumed = lab.manage("resume_consumers")  # the deploy was called off

    assert resumed.code == 0, resumed.text
    assert "Restoring gate run" in resumed.out
    assert lab.active_queues() == before
    assert lab.leases([w1.name]) == {w1.name: {}}
    assert GateRun.objects.get().restored_at is not None


def test_a_blocked_verdict_releases_the_lease(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "3")

    assert result.code == 1, result.text
    assert lab.leases([w1.name]) == {w1.name: {}}
    assert "lease of gate run" in w1.logs() and "released" in w1.logs()


def test_a_worker_without_taskmaster_tasks_is_drained_without_a_lease(lab: Lab) -> None:
    modern = lab.start_worker("w1")
    old = lab.start_worker("w2", queues=[f"{lab.queue}-old"], old_image=True)
    before = lab.active_queues()
    lab.send("generate_report", 60)
    lab.wait_active(modern.name)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "3", "--json")

    assert result.code == 1, result.text
    report = json.loads(result.out)
    assert {w["hostname"]: w["lease"] for w in report["workers"]} == {
        modern.name: True,
        old.name: False,
    }
    assert any(f"draining {old.name}" in n and "no lease" in n for n in report["notes"])
    assert lab.active_queues() == before  # restored all the same


@ALL_BROKERS
def test_the_hold_runs_out_on_every_broker(lab: Lab) -> None:
    worker = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    before = lab.active_queues()

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10", "--hold", "3", "--json")

    assert result.code == 0, result.text
    assert json.loads(result.out)["workers"][0]["lease"] is True
    assert drained(lab, worker.name)
    wait_for(lambda: lab.active_queues() == before, timeout=20, step=0.5)


def test_a_plain_celery_app_without_django_holds_the_lease(lab: Lab) -> None:
    worker = lab.start_worker("plain", app="tests.support.plain_app", django=False)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10", "--hold", "3", "--json")

    assert result.code == 0, result.text
    assert json.loads(result.out)["workers"][0]["lease"] is True
    banner = worker.logs()
    assert ".> app:         plain:" in banner  # the plain app, with no Django around it
    assert "project.tasks" not in banner
    assert drained(lab, worker.name)
    wait_for(lambda: lab.active_queues() == {worker.name: [lab.queue]}, timeout=20, step=0.5)
