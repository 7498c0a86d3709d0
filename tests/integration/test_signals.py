"""Taskmaster's Django signals (docs/observability.md, "Signals"), heard by a project's own
receivers (tests/support/signal_receivers.py) in real gates against real workers.

Each receiver asks the workers what they consume when it runs: ``consumers_restored`` and
``gate_finished`` must come after the restore, never before it. A receiver that raises is
logged and changes nothing: not the restore, not the exit code. Every record of the
``taskmaster`` logger carries its run's id (``record.run_id``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from taskmaster import signals
from taskmaster.admin import actions
from taskmaster.models import GateRun
from tests.support.lab import Lab, drained, wait_for
from tests.support.web import site_on

SETTINGS = "tests.support.signal_settings"
BLOCKED = ("--timeout", "3", "--interval", "1")


def gate(lab: Lab, *args: str, raising: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    log = lab.var_dir / "signals.jsonl"
    log.unlink(missing_ok=True)
    env = {"SIGNAL_LOG": str(log), **({"SIGNAL_RAISE": "1"} if raising else {})}
    result = lab.manage("prepare_deploy", *args, settings=SETTINGS, env=env)
    return result, [json.loads(line) for line in log.read_text().splitlines()]


def test_a_blocked_gate_sends_each_signal_in_order_and_announces_after_the_restore(
    lab: Lab,
) -> None:
    w1 = lab.start_busy_worker("w1")

    result, heard = gate(lab, *BLOCKED)

    assert result.code == 1, result.text
    run = GateRun.objects.get()
    names = [h["signal"] for h in heard]
    polls = names.count("gate_polled")
    assert polls >= 2, names
    assert names == [
        "gate_started",
        *["gate_polled"] * polls,
        "consumers_restored",
        "gate_finished",
    ]
    assert {h["run"] for h in heard} == {run.pk}
    started, *polled, restored, finished = heard
    assert started["workers"] == [w1.name]
    assert started["queues"] == {w1.name: [lab.queue]}  # sent before the first cancel
    assert [p["verdict"] for p in polled] == [None] * (polls - 1) + ["blocked"]
    assert all(p["blockers"] == ["project.tasks.generate_report"] for p in polled)
    assert restored == {**restored, "by": "gate", "workers": [w1.name], "problems": []}
    assert restored["queues"] == {w1.name: [lab.queue]}  # back when the signal came
    assert finished == {**finished, "verdict": "blocked", "exit_code": 1, "recorded": "blocked"}
    assert finished["queues"] == {w1.name: [lab.queue]}
    # A receiver's note reaches the person who runs the gate and the run's record.
    assert "heard gate_started for 1 worker(s)" in result.out
    assert "heard gate_finished: blocked" in result.out
    assert "heard gate_finished: blocked" in run.report["notes"]


def test_a_clear_gate_finishes_without_a_restore(lab: Lab) -> None:
    w1 = lab.start_worker("w1")

    result, heard = gate(lab, "--interval", "1")

    assert result.code == 0, result.text
    assert [h["signal"] for h in heard if h["signal"] != "gate_polled"] == [
        "gate_started",
        "gate_finished",
    ]
    assert heard[-1]["verdict"] == "clear"
    assert heard[-1]["queues"] == {w1.name: []}  # the clear holds the drain


@pytest.mark.parametrize("args", [BLOCKED, ("--interval", "1")], ids=["blocked", "clear"])
def test_receivers_that_raise_change_neither_the_restore_nor_the_exit_code(
    lab: Lab, args: tuple[str, ...]
) -> None:
    w1 = lab.start_busy_worker("w1") if args == BLOCKED else lab.start_worker("w1")

    result, heard = gate(lab, *args, raising=True)

    expected = 1 if args == BLOCKED else 0
    assert result.code == expected, result.text
    assert heard[0]["signal"] == "gate_started" and heard[-1]["signal"] == "gate_finished"
    assert "Traceback" in result.err  # logged, with its traceback
    assert "a receiver of taskmaster.signals.gate_finished failed" in result.err
    assert "a receiver of taskmaster.signals.gate_polled failed" in result.err
    if args == BLOCKED:
        assert "a receiver of taskmaster.signals.consumers_restored failed" in result.err
        assert lab.active_queues() == {w1.name: [lab.queue]}
        assert GateRun.objects.get().restored_at is not None
    else:
        assert drained(lab, w1.name)
        assert GateRun.objects.get().verdict == "clear"


def test_resume_consumers_and_the_admin_send_consumers_restored(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1")
    log = lab.var_dir / "signals.jsonl"
    env = {"SIGNAL_LOG": str(log), "SIGNAL_RAISE": "1"}

    def killed() -> GateRun:
        proc = lab.start_gate("--interval", "1", "--timeout", "120", env={
            **env, "DJANGO_SETTINGS_MODULE": SETTINGS})  # fmt: skip
        wait_for(lambda: drained(lab, w1.name))
        proc.kill()
        proc.wait()
        return GateRun.objects.open().get(pid=proc.pid)

    first = killed()
    resumed = lab.manage("resume_consumers", settings=SETTINGS, env=env)
    assert resumed.code == 0, resumed.text  # its receiver raised
    last = json.loads(log.read_text().splitlines()[-1])
    assert last == {**last, "signal": "consumers_restored", "run": first.pk}
    assert last == {**last, "by": "resume_consumers", "problems": []}
    assert last["queues"] == {w1.name: [lab.queue]}

    # The admin's Resume consumers button: the same signal, by "admin", in the web process.
    second = killed()
    heard: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        heard.append({**kwargs, "queues": lab.active_queues()})

    signals.consumers_restored.connect(receiver, dispatch_uid="test.admin")
    try:
        with site_on(lab):
            actions.resume("alice", "127.0.0.1", now=timezone.now())
    finally:
        signals.consumers_restored.disconnect(dispatch_uid="test.admin")
    assert [(h["run"].pk, h["by"], h["workers"], h["problems"]) for h in heard] == [
        (second.pk, "admin", [w1.name], [])
    ]
    assert heard[0]["queues"] == {w1.name: [lab.queue]}


def test_every_record_of_the_taskmaster_logger_names_its_run(lab: Lab) -> None:
    lab.start_busy_worker("w1")

    result, _ = gate(lab, *BLOCKED)

    assert result.code == 1, result.text
    run = GateRun.objects.get()
    lines = Path(lab.var_dir / "runs.log").read_text().splitlines()
    of_run = [line for line in lines if f"gate run #{run.pk}" in line]
    assert len(of_run) >= 5, lines  # opened, drained, polls, restored, verdict
    assert all(line.startswith(f"run={run.pk} ") for line in of_run), of_run
    # Before the gate opens its run, a record has no run to name.
    assert all(re.match(r"run=(None|\d+) ", line) for line in lines), lines
