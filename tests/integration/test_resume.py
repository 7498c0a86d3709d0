"""``resume_consumers`` on every documented exit and option, with a drain really left open.

docs/usage.md, ``resume_consumers``: exit 2 (no such gate run), 3 (broker out of reach), 4 (the
gate still runs), 5 (a worker does not answer; ``--ignore-missing``), 6 (an unexpected error)
and ``--run RUN`` among two open drains. The drains are left open the way they are in life: a
real gate SIGKILLed mid-drain, against real RabbitMQ, real ``celery worker`` processes and
PostgreSQL. Each refusal or failure must leave the drain open and the workers drained, and a
plain resume must then close it. (Exits 0 and 2 for settings, the broker's transport, the
database and another broker's run are proved in test_contract.py, test_gate.py and
test_faults.py.)
"""

from __future__ import annotations

import signal

from taskmaster.models import GateRun
from tests.support.lab import Lab, drained, finish, wait_for
from tests.support.proxy import Proxy

FAST = ("--interval", "1")
DRAIN_CLOSED = "Drain closed: every worker consumes the queues it recorded again."


def killed_gate(lab: Lab, *nodes: str, args: tuple[str, ...] = (), **popen: str) -> GateRun:
    """SIGKILL a gate once it has drained ``nodes``: its drain stays open, nothing restored."""
    gate = lab.start_gate(*FAST, "--timeout", "120", *args, **popen)
    wait_for(lambda: drained(lab, *nodes))
    gate.kill()
    gate.wait()
    return GateRun.objects.open().get(pid=gate.pid)


def still_open(run: GateRun) -> bool:
    run.refresh_from_db()
    return run.is_open and run.restored_at is None


def test_a_run_that_does_not_exist_is_exit_2_and_leaves_the_open_drain(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    run = killed_gate(lab, w1.name)

    result = lab.manage("resume_consumers", "--run", "999999")

    assert result.code == 2, result.text
    assert (result.out, result.err) == ("", "there is no gate run #999999\n")
    assert still_open(run)
    assert drained(lab, w1.name)  # a wrong number restores nothing, not "everything"

    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == {w1.name: [lab.queue]}
    assert not still_open(run)


def test_a_broker_out_of_reach_is_exit_3_and_resume_restores_once_it_is_back(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    # The gate and resume_consumers reach the broker through the proxy, the workers directly:
    # cutting it takes the broker away from resume_consumers only.
    proxy = Proxy(lab.broker_url)
    try:
        run = killed_gate(lab, w1.name, broker_url=proxy.url)
        proxy.cut()
        result = lab.manage("resume_consumers", broker_url=proxy.url)
        assert drained(lab, w1.name)
        proxy.restore()
        resumed = lab.manage("resume_consumers", broker_url=proxy.url)
    finally:
        proxy.close()

    assert result.code == 3, result.text
    assert result.out == ""
    # The broker it names is the one the run recorded (password masked): the connection fails
    # before the check that the run was recorded on this broker.
    assert result.err.startswith(f"cannot reach the broker at {run.broker}: "), result.err
    assert "guest:guest" not in result.text
    assert "Traceback" not in result.text
    assert not GateRun.objects.get(pk=run.pk).restore_problems
    assert resumed.code == 0, resumed.text
    assert resumed.out.splitlines()[-1] == DRAIN_CLOSED
    assert lab.active_queues() == {w1.name: [lab.queue]}
    assert not still_open(run)


def test_a_gate_still_running_is_exit_4_and_it_restores_when_stopped(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    gate = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, w1.name))
    run = GateRun.objects.open().get()
    assert run.pid == gate.pid

    result = lab.manage("resume_consumers")

    assert result.code == 4, result.text
    assert result.out == (
        f"gate run #{run.pk} is still running (pid {gate.pid}): stop it with SIGINT or SIGTERM "
        "and it restores the consumers itself\n"
    )
    assert result.err == ""
    assert drained(lab, w1.name)  # resume took nothing from under the running gate
    assert lab.leases([w1.name])[w1.name]["run"] == run.pk
    assert gate.poll() is None

    gate.send_signal(signal.SIGINT)
    stopped = finish(gate)
    assert stopped.code == 130, stopped.text
    assert lab.active_queues() == {w1.name: [lab.queue]}
    run.refresh_from_db()
    assert (run.verdict, run.is_open) == ("interrupted", False)


def test_a_worker_that_does_not_answer_is_exit_5_until_ignore_missing(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    run = killed_gate(lab, w1.name, w2.name)
    w1.kill()  # its whole process group: the worker is gone for good

    result = lab.manage("resume_consumers")

    assert result.code == 5, result.text
    assert result.err.splitlines() == [
        f"not restored: {w1.name} does not answer: it may still be drained (recorded: {lab.queue})",
        "The drain stays open; fix what is named and run this again.",
    ]
    assert DRAIN_CLOSED not in result.out
    assert "Traceback" not in result.text
    # The survivor is restored all the same; the run stays open, with what is missing.
    assert lab.active_queues([w2.name]) == {w2.name: [f"{lab.queue}-2"]}
    assert still_open(run)
    assert run.restore_problems == [result.err.splitlines()[0].removeprefix("not restored: ")]

    ignored = lab.manage("resume_consumers", "--ignore-missing")

    assert ignored.code == 0, ignored.text
    assert (
        f"ignored: {w1.name} does not answer: it may still be drained (recorded: {lab.queue})"
    ) in ignored.out.splitlines()
    assert ignored.out.splitlines()[-1] == DRAIN_CLOSED
    assert ignored.err == ""
    assert lab.active_queues([w2.name]) == {w2.name: [f"{lab.queue}-2"]}
    run.refresh_from_db()
    assert (run.is_open, run.verdict, run.restore_problems) == (False, "interrupted", [])
    assert run.restored_at is not None


def test_an_unexpected_error_is_exit_6_logged_with_its_traceback(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    run = killed_gate(lab, w1.name)

    result = lab.manage("resume_consumers", module="tests.support.resume_faults", timeout=60)

    assert result.code == 6, result.text
    assert result.err.splitlines()[-1] == "resume_consumers failed: RuntimeError('injected fault')"
    assert DRAIN_CLOSED not in result.out
    # The traceback is logged, in the project's log file. The demo project's LOGGING also sends
    # the taskmaster logger's ERROR records to the console: on stderr it is that record, never
    # the command printing a bare traceback.
    log = (lab.var_dir / "taskmaster.log").read_text()
    assert "ERROR taskmaster: resume_consumers failed\nTraceback" in log
    assert "RuntimeError: injected fault" in log
    assert result.err.count("Traceback") == 1
    assert "ERROR taskmaster: resume_consumers failed\nTraceback" in result.err
    assert still_open(run)
    assert drained(lab, w1.name)

    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert lab.active_queues() == {w1.name: [lab.queue]}
    assert not still_open(run)


def test_run_restores_only_that_run_of_two_open_drains(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    w2 = lab.start_busy_worker("w2", queues=[f"{lab.queue}-2"])
    # Two selective gates at once, one per worker, both killed mid-drain.
    first = lab.start_gate(*FAST, "--timeout", "120", "--worker", w1.name)
    wait_for(lambda: drained(lab, w1.name))
    second = lab.start_gate(*FAST, "--timeout", "120", "--worker", w2.name)
    wait_for(lambda: drained(lab, w2.name))
    for gate in (first, second):
        gate.kill()
        gate.wait()
    one, two = (GateRun.objects.open().get(pid=gate.pid) for gate in (first, second))
    assert (list(one.snapshot), list(two.snapshot)) == ([w1.name], [w2.name])

    result = lab.manage("resume_consumers", "--run", str(one.pk))

    assert result.code == 0, result.text
    assert result.out.splitlines()[0].startswith(f"Restoring gate run #{one.pk} ")
    assert result.out.splitlines()[-1] == DRAIN_CLOSED
    assert f"#{two.pk}" not in result.out
    assert lab.active_queues([w1.name]) == {w1.name: [lab.queue]}
    assert drained(lab, w2.name)
    assert lab.leases([w2.name])[w2.name]["run"] == two.pk  # its lease was not released
    assert not still_open(one)
    assert still_open(two)
