"""The gate as a CI step runs it: a subprocess with no terminal, ``CI=true``, GitHub's files.

Real RabbitMQ (Redis where said), real workers, PostgreSQL. Each test reads what a pipeline
would: the exit code, ``GITHUB_OUTPUT``, the step summary, the annotations, the report file
(checked against the published JSON schema).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taskmaster.models import GateRun
from tests.support.lab import Lab, Result, finish, read_until, valid_report, wait_for

FAST = ("--interval", "1")


@dataclass
class Step:
    """One CI step's results: what the runner keeps besides the log."""

    result: Result
    outputs: dict[str, str]
    summary: str
    report: dict[str, Any]

    @property
    def annotations(self) -> list[str]:
        return [line for line in self.result.out.splitlines() if line.startswith("::")]


def ci_step(
    lab: Lab,
    tmp_path: Path,
    *args: str,
    then: tuple[str, Callable[[], Any]] | None = None,
    **manage: Any,
) -> Step:
    """The gate as a CI step. ``then=(line, action)``: once the gate has printed a line with
    ``line`` in it, the test does ``action`` (ends a task: the gate saw it first)."""
    files = {name: tmp_path / name for name in ("output.txt", "summary.md")}
    report = tmp_path / "artifacts" / "gate.json"
    env = {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(files["output.txt"]),
        "GITHUB_STEP_SUMMARY": str(files["summary.md"]),
    }
    if then is None:
        result = lab.manage("prepare_deploy", *args, "--report", str(report), env=env, **manage)
    else:
        gate = lab.start_gate(*args, "--report", str(report), env=env, **manage)
        line, action = then
        seen = read_until(gate, line)
        action()
        result = finish(gate)
        result.out = seen + result.out
    outputs = dict(
        line.split("=", 1) for line in files["output.txt"].read_text().splitlines() if line
    )
    return Step(result, outputs, files["summary.md"].read_text(), json.loads(report.read_text()))


def busy(lab: Lab, name: str = "w1", **worker: Any) -> str:
    return lab.start_busy_worker(name, seconds=60, **worker).name


def test_a_clear_gate_as_a_ci_step(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_worker("w1").name

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "10", "--hold", "5")

    assert step.result.code == 0, step.result.text
    run = GateRun.objects.get()
    assert step.outputs == {
        "verdict": "clear",
        "exit_code": "0",
        "blockers": "0",
        "run_id": str(run.pk),
    }
    valid_report(step.report)
    assert step.report["verdict"] == "clear"
    assert step.summary.startswith(f"### ✅ Deploy gate: clear — exit 0, gate run #{run.pk}\n")
    assert f"**Workers drained (1):** `{w1}`" in step.summary
    assert "Safe to stop the workers" in step.summary
    assert step.annotations == []


def test_a_blocked_gate_as_a_ci_step(lab: Lab, tmp_path: Path) -> None:
    node = busy(lab)

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "3")

    assert step.result.code == 1, step.result.text
    assert (step.outputs["verdict"], step.outputs["exit_code"], step.outputs["blockers"]) == (
        "blocked",
        "1",
        "1",
    )
    valid_report(step.report)
    assert [b["name"] for b in step.report["blockers"]] == ["project.tasks.generate_report"]
    assert "| `project.tasks.generate_report` | 1 | 1 active |" in step.summary
    (annotation,) = step.annotations  # the blocker table's row, as every output draws it
    assert re.fullmatch(
        r"::error title=Deploy gate blocker::project\.tasks\.generate_report: 1 active on "
        r"\S+, oldest running \d+ s \(blocking\): acknowledged when it started: stopping the "
        r"worker now loses it",
        annotation,
    ), annotation
    assert lab.active_queues() == {node: [lab.queue]}


def test_a_dry_run_as_a_ci_step(lab: Lab, tmp_path: Path) -> None:
    node = busy(lab)

    step = ci_step(lab, tmp_path, "--dry-run")

    assert step.result.code == 1, step.result.text
    assert step.outputs == {"verdict": "blocked", "exit_code": "1", "blockers": "1", "run_id": ""}
    valid_report(step.report)
    assert step.report["dry_run"] is True
    assert [(t["name"], t["classification"], t["blocks"]) for t in step.report["tasks"]] == [
        ("project.tasks.generate_report", "blocking", True)
    ]
    assert step.summary.startswith("### ⛔ Deploy gate: blocked (dry run) — exit 1\n")
    assert lab.active_queues() == {node: [lab.queue]}  # nothing cancelled


def test_a_selective_drain_by_worker_leaves_the_others_alone(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_worker("w1").name
    w2 = busy(lab, "w2", queues=[f"{lab.queue}-2"])  # its blocker is not this gate's business
    pattern = "w1-*@lab"

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "10", "--hold", "5", "--worker", pattern)

    assert step.result.code == 0, step.result.text
    valid_report(step.report)
    assert [w["hostname"] for w in step.report["workers"]] == [w1]
    assert step.report["out_of_scope"] == [w2]
    assert step.report["scope"] == {"workers": [pattern], "queues": []}
    assert lab.active_queues() == {w1: [], w2: [f"{lab.queue}-2"]}
    assert GateRun.objects.get().scope == {"workers": [pattern], "queues": []}


def test_worker_and_queue_repeat_and_a_worker_must_match_both(lab: Lab, tmp_path: Path) -> None:
    """docs/usage.md: --worker and --queue are repeatable; with both, a worker must match
    both."""
    shared, other = f"{lab.queue}-shared", f"{lab.queue}-other"
    w1 = lab.start_worker("w1", queues=[shared]).name
    w2 = lab.start_worker("w2", queues=[shared]).name
    w3 = lab.start_worker("w3", queues=[other]).name
    w4 = lab.start_worker("w4", queues=[shared]).name
    # w1 and w2 (named), and w3 (named, but it does not consume a queue asked for) and w4
    # (consumes one, but is not named) are left alone.
    scope = ["--worker", "w1-*", "--worker", "w2-*", "--worker", "w3-*"]
    scope += ["--queue", shared, "--queue", f"{lab.queue}-nowhere"]

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "10", "--hold", "5", *scope)

    assert step.result.code == 0, step.result.text
    assert sorted(w["hostname"] for w in step.report["workers"]) == [w1, w2]
    assert sorted(step.report["out_of_scope"]) == [w3, w4]
    assert lab.active_queues() == {w1: [], w2: [], w3: [other], w4: [shared]}


def test_a_selective_drain_by_queue_and_two_at_once(lab: Lab, tmp_path: Path) -> None:
    old, new = f"{lab.queue}-v41", f"{lab.queue}-v42"
    w1 = busy(lab, "w1", queues=[old])  # the old pool, running a blocking task
    w2 = lab.start_worker("w2", queues=[new]).name
    first = lab.start_gate(*FAST, "--timeout", "60", "--queue", old)
    wait_for(lambda: lab.active_queues([w1])[w1] == [])

    # A second selective gate on the other pool may run at once...
    step = ci_step(lab, tmp_path, *FAST, "--timeout", "10", "--hold", "5", "--queue", new)
    # ...but one that would take the first one's worker is refused.
    overlapping = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--worker", w1)

    assert step.result.code == 0, step.result.text
    assert [w["hostname"] for w in step.report["workers"]] == [w2]
    assert overlapping.code == 4, overlapping.text
    assert f"another drain is open on {w1}" in overlapping.err
    first.send_signal(signal.SIGINT)
    assert finish(first).code == 130
    assert lab.active_queues([w1]) == {w1: [old]}


def test_no_worker_in_scope_is_exit_2(lab: Lab, tmp_path: Path) -> None:
    w1 = lab.start_worker("w1").name

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "5", "--worker", "*@elsewhere")

    assert step.result.code == 2, step.result.text
    assert step.report["error"] == (
        f"no worker matches --worker '*@elsewhere': 1 answered ({w1}). If the one you meant "
        "is gone already, pass --allow-no-workers. Nothing was touched."
    )
    assert step.outputs["verdict"] == "error"


def test_the_predicted_clear_time_of_bounded_blockers(lab: Lab, tmp_path: Path) -> None:
    node = lab.start_worker("w1").name
    task_id = lab.send("send_receipt", 25)  # short: time_limit 30 s
    started = datetime.fromtimestamp(lab.wait_active(node)[0]["time_start"]).astimezone()

    # The task ends (the test ends it) once the gate has predicted when it would.
    end_it = ("clear expected by", lambda: lab.app.control.revoke(task_id, terminate=True))
    step = ci_step(lab, tmp_path, *FAST, "--timeout", "40", then=end_it)

    assert step.result.code == 0, step.result.text  # it ended well before its bound
    expected = datetime.fromisoformat(step.report["expected_clear_at"])
    assert abs((expected - started).total_seconds() - 30) < 1.5  # its start + its time limit
    notes = [n for n in step.report["notes"] if n.startswith("clear expected by ")]
    assert len(notes) == 1 and "after the deadline" not in notes[0]


def test_a_deadline_before_the_predicted_clear_says_so_at_once(lab: Lab, tmp_path: Path) -> None:
    node = lab.start_worker("w1").name
    lab.send("send_receipt", 20)
    lab.wait_active(node)

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "3")

    assert step.result.code == 1, step.result.text
    (note,) = [n for n in step.report["notes"] if n.startswith("clear expected by ")]
    assert "after the deadline" in note and "this gate ends blocked" in note
    first_poll = step.result.out.index("poll:")
    assert step.result.out.index("clear expected by") < first_poll  # said at the first poll


def test_fail_fast_gives_up_on_a_blocker_that_cannot_end_in_time(lab: Lab, tmp_path: Path) -> None:
    node = busy(lab)
    time.sleep(4)  # it has run longer than the time the gate would have left

    started = time.monotonic()
    step = ci_step(lab, tmp_path, *FAST, "--timeout", "30", "--fail-fast")
    elapsed = time.monotonic() - started

    assert step.result.code == 1, step.result.text
    assert any(n.startswith("giving up at once (--fail-fast): ") for n in step.report["notes"])
    assert elapsed < 15  # not the 30 s deadline
    assert lab.active_queues() == {node: [lab.queue]}


@pytest.mark.parametrize("lab", ["redis"], indirect=True)
def test_redis_redelivery_is_in_the_report_and_late_etas_are_warned_of(
    lab: Lab, tmp_path: Path
) -> None:
    lab.start_worker("w1")
    lab.send("resize_images", 1, countdown=4000)  # due after Redis's visibility timeout

    step = ci_step(lab, tmp_path, *FAST, "--timeout", "10", "--hold", "5")

    assert step.result.code == 0, step.result.text  # due after the deadline: not a blocker
    assert step.report["redelivery"] == {
        "transport": "redis",
        "visibility_timeout": 3600.0,
        "late_ack": "when its worker shuts down cleanly (SIGTERM), else only after the "
        "visibility timeout (3600 s)",
    }
    assert any(
        n.startswith("warning: 1 ETA task(s) (project.tasks.resize_images) are due more than")
        and "each will run twice" in n
        for n in step.report["notes"]
    )
