"""The deploy gate end to end: real brokers, real ``celery worker`` processes, Postgres."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from taskmaster.cluster.replies import ARGUMENTS_LIMIT
from taskmaster.models import GateRun, RecordedBlocker
from tests.conftest import ALL_BROKERS
from tests.support.lab import Lab, drained, finish, read_until, wait_for

FAST = ("--interval", "1")


@ALL_BROKERS
def test_idle_cluster_clears_and_leaves_consumers_cancelled(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[lab.queue, f"{lab.queue}-bulk"])

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "30", "--json")

    assert result.code == 0, result.text
    report = json.loads(result.out)
    assert report["verdict"] == "clear"
    assert report["blockers"] == []
    assert {w["hostname"]: w["queues"] for w in report["workers"]} == {
        w1.name: [lab.queue],
        w2.name: sorted([lab.queue, f"{lab.queue}-bulk"]),
    }
    # A clear gate leaves the workers drained: the deploy restarts them.
    assert lab.active_queues() == {w1.name: [], w2.name: []}
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("clear", False)
    assert set(run.snapshot) == {w1.name, w2.name}


@ALL_BROKERS
def test_running_early_ack_task_blocks_and_every_queue_is_restored(lab: Lab) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-a", f"{lab.queue}-b"])
    w2 = lab.start_worker("w2")
    before = lab.active_queues()
    task_id = lab.send("generate_report", 60, kwargs={"customer": "hunter2-secret"})
    wait_for(lambda: lab.active_tasks(w1.name) or lab.active_tasks(w2.name))

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "3", "--json")

    assert result.code == 1, result.text
    report = json.loads(result.out)
    assert report["verdict"] == "blocked"
    assert [(b["id"], b["name"], b["state"], b["classification"]) for b in report["blockers"]] == [
        (task_id, "project.tasks.generate_report", "active", "blocking")
    ]
    assert report["blockers"][0]["runtime_seconds"] > 0
    assert report["restored"] is True
    assert lab.active_queues() == before  # exactly as it was, on every worker
    assert "hunter2-secret" not in result.text  # task arguments are not shown by default
    assert "guest:guest" not in result.text  # nor the broker password
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("blocked", False)
    assert run.restored_at is not None
    assert RecordedBlocker.objects.get(run=run, at_verdict=True).task_id == task_id


def test_only_acks_late_tasks_running_clears(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    lab.send("resize_images", 60)
    lab.send("resize_images", 60)
    lab.wait_active(w1.name, count=2)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "30")

    assert result.code == 0, result.text
    assert "verdict: clear" in result.out
    assert drained(lab, w1.name)


def test_short_blocker_that_ends_during_the_wait_clears_soon_after(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    task_id = lab.send("send_receipt", 25)  # short: a time limit of 30 s
    lab.wait_active(w1.name)

    gate = lab.start_gate(*FAST, "--timeout", "60")
    seen = read_until(gate, "project.tasks.send_receipt")  # a blocker at first
    started = time.monotonic()
    lab.app.control.revoke(task_id, terminate=True)  # it ends mid-wait
    result = finish(gate)

    assert result.code == 0, seen + result.text
    assert "short" in seen
    assert time.monotonic() - started < 30  # its end ended the wait, not the deadline
    run = GateRun.objects.get()
    assert run.blockers.get().classification == "short"
    assert run.blockers.get().at_verdict is False


def test_between_two_polls_the_gate_watches_its_blockers(lab: Lab) -> None:
    """docs/usage.md, --interval: the verdict comes soon after the last blocker ends, not at
    the next full poll."""
    w1 = lab.start_worker("w1")
    task_id = lab.send("send_receipt", 25)
    lab.wait_active(w1.name)

    gate = lab.start_gate("--interval", "40", "--timeout", "90")
    seen = read_until(gate, "project.tasks.send_receipt")  # the first poll: a blocker
    ended = time.monotonic()
    lab.app.control.revoke(task_id, terminate=True)
    result = finish(gate)

    assert result.code == 0, seen + result.text
    assert time.monotonic() - ended < 20  # the next full poll would come 40 s after the first
    assert drained(lab, w1.name)


def test_prefetched_non_interruptible_task_behind_an_acks_late_one_holds_the_gate(
    lab: Lab,
) -> None:
    w1 = lab.start_worker("w1", concurrency=1, prefetch=4)
    lab.send("resize_images", 30)
    waiting = lab.send("generate_report", 1)
    lab.wait_active(w1.name)

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "3", "--json")

    assert result.code == 1, result.text
    blockers = json.loads(result.out)["blockers"]
    assert [(b["id"], b["state"]) for b in blockers] == [(waiting, "reserved")]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_drain_restores_and_exits_128_plus_signal(
    lab: Lab, signum: int, code: int
) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    before = lab.active_queues()
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)

    gate = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, w1.name))
    gate.send_signal(signum)
    result = finish(gate)

    assert result.code == code, result.text
    assert "Traceback" not in result.text
    assert lab.active_queues() == before
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("interrupted", False)


def test_resume_consumers_after_a_killed_gate(lab: Lab) -> None:
    w1 = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    w2 = lab.start_worker("w2")
    before = lab.active_queues()
    lab.send("generate_report", 60)
    wait_for(lambda: lab.active_tasks(w1.name) or lab.active_tasks(w2.name))

    gate = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    gate.kill()
    gate.wait()
    assert drained(lab, w1.name, w2.name)  # the killed gate left the fleet drained...
    assert GateRun.objects.open().get().snapshot  # ...and the record to restore it

    first = lab.manage("resume_consumers")
    second = lab.manage("resume_consumers")

    assert first.code == 0, first.text
    assert second.code == 0, second.text  # idempotent
    assert lab.active_queues() == before
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("interrupted", False)


def test_second_concurrent_gate_exits_4_and_says_how_to_recover(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)
    job = "https://ci.example.com/deploys/42"
    first = lab.start_gate(*FAST, "--timeout", "120", env={"CI_JOB_URL": job})
    wait_for(lambda: drained(lab, w1.name))

    second = lab.manage("prepare_deploy", *FAST, "--timeout", "5")

    assert second.code == 4, second.text
    assert "another drain is open" in second.err
    # Which gate run, since when, who: user, host, process, CI job.
    run = GateRun.objects.get()
    assert f"gate run #{run.pk}" in second.err
    assert f"@{socket.gethostname()} (pid {first.pid}), CI job {job}" in second.err
    assert "./manage.py resume_consumers" in second.err
    assert "Traceback" not in second.text
    assert drained(lab, w1.name)  # the second gate touched nothing
    first.send_signal(signal.SIGINT)
    assert finish(first).code == 130


def test_broker_unreachable_exits_3_quickly_without_traceback(lab: Lab) -> None:
    lab.broker_url = "amqp://deployer:s3cret-pass@127.0.0.1:1//"

    started = time.monotonic()
    result = lab.manage("prepare_deploy", "--timeout", "30", "--json")
    elapsed = time.monotonic() - started

    assert result.code == 3, result.text
    assert "cannot reach the broker" in result.err
    assert json.loads(result.out)["exit_code"] == 3  # still one JSON object for the CI job
    assert "Traceback" not in result.text
    assert "s3cret-pass" not in result.text
    assert elapsed < 20  # it gives up in seconds instead of retrying forever
    assert not GateRun.objects.exists()  # nothing touched, nothing locked


def test_worker_that_joins_mid_drain_is_drained_and_restored(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)
    gate = lab.start_gate(*FAST, "--timeout", "15", "--json")
    wait_for(lambda: drained(lab, w1.name))

    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-late"])
    wait_for(lambda: drained(lab, w2.name), timeout=30)
    result = finish(gate)

    assert result.code == 1, result.text
    report = json.loads(result.out)
    assert {w["hostname"] for w in report["workers"]} == {w1.name, w2.name}
    assert lab.active_queues() == {w1.name: [lab.queue], w2.name: [f"{lab.queue}-late"]}


def test_worker_that_stops_answering_blocks_and_restore_failure_exits_5(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-paused"])
    lab.send("generate_report", 60)  # holds the gate while w2 is paused
    lab.wait_active(w1.name)
    gate = lab.start_gate(*FAST, "--timeout", "6", "--json")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    w2.signal(signal.SIGSTOP)
    result = finish(gate)

    assert result.code == 5, result.text
    report = json.loads(result.out)
    assert sorted((b["worker"], b["state"]) for b in report["blockers"]) == [
        (w1.name, "active"),
        (w2.name, "unresponsive"),
    ]
    assert any(w2.name in p for p in report["restore_problems"])
    assert GateRun.objects.open().exists()  # the drain stays open until the restore is done

    w2.signal(signal.SIGCONT)
    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == {w1.name: [lab.queue], w2.name: [f"{lab.queue}-paused"]}
    assert not GateRun.objects.open().exists()


def test_show_args_shows_bounded_task_arguments(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    customer = "acme-" + "x" * 5000  # an argument far longer than any line should carry
    lab.send("generate_report", 60, kwargs={"customer": customer})
    lab.wait_active(w1.name)

    hidden = lab.manage("prepare_deploy", *FAST, "--timeout", "2", "--json")
    shown = lab.manage("prepare_deploy", *FAST, "--timeout", "2", "--show-args", "--json")

    assert (hidden.code, shown.code) == (1, 1), hidden.text + shown.text
    assert "acme" not in hidden.text  # arguments may hold secrets: off unless asked for
    (blocker,) = shown.report()["blockers"]
    assert "acme-xxx" in blocker["args"] and len(blocker["args"]) <= ARGUMENTS_LIMIT * 2
    assert "acme-xxx" in shown.err and "x" * 200 not in shown.text


@pytest.mark.parametrize("lab", ["filesystem"], indirect=True)
def test_dry_run_cancels_nothing(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    lab.send("generate_report", 60)
    lab.wait_active(w1.name)

    result = lab.manage("prepare_deploy", "--dry-run")

    assert result.code == 1, result.text
    assert "project.tasks.generate_report" in result.out
    assert lab.active_queues() == {w1.name: [lab.queue]}
    assert not GateRun.objects.exists()
