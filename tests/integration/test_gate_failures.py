"""The gate's failures after it touched the workers, and its report file, against real parts.

What docs/usage.md ("Exit codes", ``--report``) and docs/reliability.md (promises 4, 6 and 9)
say of a gate that cannot finish its drain the normal way:

- the broker stays away past the deadline and comes back for the restore: consumers restored,
  exit 6 (promise 4);
- the database fails mid-drain: consumers restored first, one sentence, the traceback logged,
  exit 6 (promise 9);
- a second Ctrl-C does not cut the restore short (promise 6, "Signals");
- a SIGTERM that comes while a blocked verdict's restore runs does not cut it short either,
  and the gate exits with its verdict (1, not 143);
- ``--report PATH`` is written whatever happens: exits 3, 4 and 6, and a signal (130).

Real RabbitMQ, real ``celery worker`` processes, PostgreSQL, the gate as a subprocess. A
``Proxy`` (tests/support/proxy.py) between the gate and the broker, or the database, is cut
and restored; the machine's services themselves are never touched. A restore is held open
on purpose by a worker paused with SIGSTOP, so a signal sent while the gate restores lands in
the restore, never after it.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from taskmaster.models import GateRun
from tests.support.lab import (
    Lab,
    Worker,
    contract_report,
    drained,
    finish,
    read_until,
    wait_for,
)
from tests.support.proxy import Proxy

FAST = ("--interval", "1")


# -- exit 6: the gate fails after it touched the workers -----------------------------


def test_broker_back_only_for_the_restore_restores_and_exits_6(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_busy_worker("w1", queues=[lab.queue, f"{lab.queue}-x"], seconds=60)
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    before = lab.active_queues()
    path = tmp_path / "artifacts" / "gate.json"  # a folder that does not exist yet
    proxy = Proxy(lab.broker_url)
    try:
        gate = lab.start_gate(*FAST, "--timeout", "6", "--report", str(path), broker_url=proxy.url)
        wait_for(lambda: drained(lab, w1.name, w2.name))
        proxy.cut()
        # The gate reconnects with backoff until its deadline, then says it gives up and
        # restores. The broker comes back at that line: the restore's first call retries its
        # connection (kombu's default channel, 2 s apart), and finds it back.
        seen = read_until(gate, "stayed away past the deadline")
        proxy.restore()
        result = finish(gate)
    finally:
        proxy.close()

    assert result.code == 6, seen + result.text
    assert "lost the broker" in seen
    assert "error: the broker stayed away past the deadline: cannot reach the broker" in result.err
    assert "Traceback" not in seen + result.text
    assert lab.active_queues() == before
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("error", False)
    assert run.restored_at is not None
    # --report, on exit 6: the same report, with the error's sentence.
    report = contract_report(path.read_text(), 6)
    assert (report["verdict"], report["restored"], report["run_id"]) == ("error", True, run.pk)
    assert report["error"].startswith("the broker stayed away past the deadline: ")


def test_database_lost_mid_drain_restores_first_and_exits_6(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1", queues=[lab.queue, f"{lab.queue}-x"], seconds=60)
    before = lab.active_queues()
    proxy = Proxy(lab.database_url)  # a TCP proxy: PostgreSQL's protocol goes through as is
    direct, lab.database_url = lab.database_url, proxy.url  # for the gate's process only
    try:
        gate = lab.start_gate(*FAST, "--timeout", "60")
        lab.database_url = direct
        wait_for(lambda: drained(lab, w1.name))
        # Cut for good: the gate renews the lease's record at every poll, so the next poll
        # fails, and so does the recording of the verdict after the restore.
        proxy.cut()
        result = finish(gate)
    finally:
        lab.database_url = direct
        proxy.close()

    assert result.code == 6, result.text
    # Consumers restored first, although the database never came back.
    assert lab.active_queues() == before
    assert lab.leases([w1.name]) == {w1.name: {}}
    assert "error: the database failed while recording the verdict (" in result.err
    assert (
        "); consumers restored. The run stays open there: run ./manage.py resume_consumers "
        "once it is back\n"
    ) in result.err
    # The gate's own lines say it in a sentence; the traceback goes to the log. (The demo
    # project's LOGGING also sends ERROR records to the console, so stderr shows it too:
    # docs/usage.md, "Logging": your handlers decide.)
    assert "the gate failed: OperationalError(" in result.out
    assert "Traceback" not in result.out
    log = (lab.var_dir / "taskmaster.log").read_text()
    run = GateRun.objects.get()
    assert f"ERROR taskmaster: gate run #{run.pk} failed; restoring its consumers\nTraceback" in log
    assert f"ERROR taskmaster: gate run #{run.pk}: cannot record the verdict\nTraceback" in log
    assert f"gate run #{run.pk}: consumers restored on {w1.name}" in log
    # The verdict could not be written: the run stays open, and resume_consumers closes it.
    assert run.is_open
    resumed = lab.manage("resume_consumers")
    assert resumed.code == 0, resumed.text
    assert not GateRun.objects.open().exists()
    assert lab.active_queues() == before


# -- signals during a restore --------------------------------------------------------


def two_drained(
    lab: Lab, timeout: str
) -> tuple[Worker, Worker, dict[str, list[str]], subprocess.Popen[str]]:
    """A gate that drains w1 (running a blocking task) and w2, each with two queues."""
    w1 = lab.start_busy_worker("w1", queues=[lab.queue, f"{lab.queue}-x"], seconds=60)
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2", f"{lab.queue}-3"])
    before = lab.active_queues()
    gate = lab.start_gate(*FAST, "--timeout", timeout)
    wait_for(lambda: drained(lab, w1.name, w2.name))
    return w1, w2, before, gate


def test_a_second_ctrl_c_does_not_cut_the_restore_short(lab: Lab) -> None:
    w1, w2, before, gate = two_drained(lab, "120")
    # w2 paused: the restore cannot end before it answers, which it does only once it is
    # continued, after the second Ctrl-C.
    w2.signal(signal.SIGSTOP)
    gate.send_signal(signal.SIGINT)
    seen = read_until(gate, "stopped by SIGINT: restoring consumers")
    gate.send_signal(signal.SIGINT)  # impatient: Ctrl-C again
    w2.signal(signal.SIGCONT)
    result = finish(gate)

    assert result.code == 130, seen + result.text
    assert "Traceback" not in seen + result.text
    assert lab.active_queues() == before  # every queue back, on both workers
    assert lab.leases([w1.name, w2.name]) == {w1.name: {}, w2.name: {}}
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("interrupted", False)
    assert run.restored_at is not None


def test_sigterm_during_a_blocked_verdicts_restore_lets_it_end_and_exits_1(lab: Lab) -> None:
    w1, w2, before, gate = two_drained(lab, "8")
    w2.signal(signal.SIGSTOP)  # holds the restore open until it is continued
    # Paused before the verdict (a poll finds it unresponsive), so it is paused in the restore.
    seen = read_until(gate, f"{w2.name} (unresponsive)")
    seen += read_until(gate, "deadline passed with")
    gate.send_signal(signal.SIGTERM)  # a CI runner cancelling the job, mid-restore
    w2.signal(signal.SIGCONT)
    result = finish(gate)

    # The verdict was reached before the signal: the restore ends, verified, and the gate
    # exits with its verdict, 1 (the signal is not 143 here: taskmaster/drain/run.py takes the
    # stop signal into the outcome only before the verdict, in Drain.outcome).
    assert result.code == 1, seen + result.text
    assert "verdict: blocked (exit 1)" in result.out
    assert "Traceback" not in seen + result.text
    assert lab.active_queues() == before
    assert lab.leases([w1.name, w2.name]) == {w1.name: {}, w2.name: {}}
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("blocked", False)
    assert run.restored_at is not None


# -- --report PATH, whatever happens -------------------------------------------------


def test_report_file_is_written_on_exit_3(lab: Lab, tmp_path: Path) -> None:
    path = tmp_path / "gate.json"

    result = lab.manage(
        "prepare_deploy", "--report", str(path), broker_url="amqp://guest:guest@127.0.0.1:1//"
    )

    assert result.code == 3, result.text
    report = contract_report(path.read_text(), 3)
    assert report["verdict"] == "error"
    assert report["error"].startswith("cannot reach the broker at amqp://guest:**@127.0.0.1:1//")
    assert not GateRun.objects.exists()


def test_report_file_is_written_on_exit_4_and_on_a_signal(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_busy_worker("w1", seconds=60)
    first_path, second_path = tmp_path / "first.json", tmp_path / "second.json"
    first = lab.start_gate(*FAST, "--timeout", "120", "--report", str(first_path))
    wait_for(lambda: drained(lab, w1.name))

    second = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--report", str(second_path))
    first.send_signal(signal.SIGINT)
    stopped = finish(first)

    assert second.code == 4, second.text
    run = GateRun.objects.get()
    refused = contract_report(second_path.read_text(), 4)
    assert refused["verdict"] == "error"
    assert refused["error"].startswith(f"another drain is open on {w1.name}: gate run #{run.pk}")
    assert stopped.code == 130, stopped.text
    interrupted = contract_report(first_path.read_text(), 130)
    assert (interrupted["verdict"], interrupted["restored"]) == ("interrupted", True)
    assert interrupted["run_id"] == run.pk
    assert lab.active_queues() == {w1.name: [lab.queue]}
