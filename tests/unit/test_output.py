"""What people and pipelines read, on made-up blockers: grouping, quiet polls, CI outputs.

Pure logic (no broker, no worker): the end-to-end behaviour is in test_pipeline.py and
test_terminal.py.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import ValidationError

from taskmaster.gate.outcome import Outcome, TaskReport
from taskmaster.gate.rules import Blocker, Decision, Gate, Verdict
from taskmaster.output.blockers import SCREENFUL, worst_first
from taskmaster.output.ci import annotation_lines, step_outputs, summary_markdown
from taskmaster.output.plain import PlainLines, blocker_lines, verdict_lines
from tests.support.lab import valid_report

NOW = 1_700_000_000.0


def blocker(name: str, state: str = "reserved", *, n: int = 0, **kw: Any) -> Blocker:
    values: dict[str, Any] = {
        "id": f"{name}-{state}-{n}",
        "name": name,
        "worker": "w1@a",
        "state": state,
        "runtime_seconds": None,
        "classification": "blocking",
        "reason": f"{state} reason",
    }
    values.update(kw)
    return Blocker(**values)


def backlog(names: int, per_name: int) -> tuple[Blocker, ...]:
    return tuple(blocker(f"app.tasks.t{i:02d}", n=j) for i in range(names) for j in range(per_name))


def outcome(blockers: tuple[Blocker, ...], **kw: Any) -> Outcome:
    start = datetime.fromtimestamp(NOW, UTC)
    values: dict[str, Any] = {
        "verdict": Verdict.BLOCKED,
        "started_at": start,
        "timeout": 600.0,
        "interval": 20.0,
        "hold": 1800.0,
        "run_id": 7,
        "blockers": blockers,
        "restore_problems": [],
    }
    values.update(kw)
    return Outcome(**values)


# -- grouping --------------------------------------------------------------------------


def test_blockers_are_grouped_by_task_name_worst_first() -> None:
    blockers = (
        blocker("app.report", "reserved", n=1),
        blocker("app.receipt", "active", classification="short", runtime_seconds=50),
        blocker("app.report", "active", runtime_seconds=12, n=2),
        blocker("app.report", "reserved", n=3),
        blocker("", "unresponsive", id="w2@a", worker="w2@a", classification=""),
        blocker("app.export", "scheduled"),
    )

    rows = worst_first(blockers)

    # The worker first; then running blocking tasks; short ones last, even when they run longer.
    assert [(r.subject, r.states, r.oldest) for r in rows] == [
        ("w2@a", (("unresponsive", 1),), None),
        ("app.report", (("active", 1), ("reserved", 2)), 12),
        ("app.export", (("scheduled", 1),), None),
        ("app.receipt", (("active", 1),), 50),
    ]
    assert rows[1].reason == "active reason"  # why the worst of them blocks


def test_a_backlog_reads_in_a_screenful_and_says_how_many_more() -> None:
    lines = blocker_lines(backlog(names=40, per_name=125), with_args=False)  # 5,000 blockers

    assert len(lines) == SCREENFUL + 1
    assert lines[0] == "app.tasks.t00: 125 reserved on w1@a (blocking): reserved reason"
    assert lines[-1] == (
        "… and 30 more task name(s) (3,750 blockers): the JSON report (--json) lists every one"
    )


def test_a_poll_with_the_same_picture_prints_nothing_new() -> None:
    stream = io.StringIO()
    report = PlainLines(stream)
    gate = Gate({}, started_at=NOW, timeout=600, interval=20, snapshot={"w1@a": []})
    first = (blocker("app.report", "active", runtime_seconds=3),)
    later = (blocker("app.report", "active", runtime_seconds=23),)  # only the runtime grew
    changed = (*later, blocker("app.export", "reserved"))

    report.polled(gate, Decision(None, first, 20), NOW)
    after_first = stream.getvalue()
    report.polled(gate, Decision(None, later, 20), NOW + 20)
    quiet = stream.getvalue()
    report.polled(gate, Decision(None, changed, 20), NOW + 40)

    assert after_first.count("poll:") == 1
    assert quiet == after_first
    assert stream.getvalue().count("poll:") == 2
    assert "app.export: 1 reserved" in stream.getvalue()


# -- CI outputs ------------------------------------------------------------------------


def test_step_outputs_for_later_steps() -> None:
    assert step_outputs(outcome(backlog(2, 3))) == (
        "verdict=blocked\nexit_code=1\nblockers=6\nrun_id=7\n"
    )


def test_at_most_ten_annotations_the_rest_rolled_into_one() -> None:
    lines = annotation_lines(outcome(backlog(names=30, per_name=2)))

    assert len(lines) == 10
    assert lines[0] == (
        "::error title=Deploy gate blocker::app.tasks.t00: 2 reserved on w1@a (blocking): "
        "reserved reason"
    )
    assert lines[-1] == (
        "::error title=Deploy gate blocker::… and 21 more task name(s) (42 blockers): see the "
        "report"
    )


def test_the_step_summary_stays_small_for_any_backlog() -> None:
    huge = backlog(names=2000, per_name=3)  # 6,000 blockers in 2,000 task names

    text = summary_markdown(outcome(huge))

    assert text.startswith("### ⛔ Deploy gate: blocked — exit 1, gate run #7\n")
    assert (
        "| … and 1,975 more task name(s) (5,925 blockers) | 5,925 | | | see the JSON report |"
    ) in text
    assert len(text.encode()) < 10_000  # GitHub's limit is 1 MiB per step
    assert "Make the tasks in the table acks_late" in text


def test_the_schema_rejects_a_report_that_breaks_the_contract() -> None:
    report = outcome(()).as_json()
    valid_report(report)  # the real thing passes
    for broken in (
        {**report, "verdict": "maybe"},
        {**report, "started_at": "yesterday"},
        {**report, "surprise": 1},
        {k: v for k, v in report.items() if k != "exit_code"},
    ):
        with pytest.raises(ValidationError):
            valid_report(broken)


SILENT = blocker(
    "", "silent", id="solo@pod", worker="solo@pod", classification="", reason="alive but silent"
)
COUNTED = {
    "method": "passive declares",
    "answered": 1,
    "consumers": {"celery": 1},
    "listeners": None,
    "alive": ["solo@pod"],
    "silent": ["solo@pod"],
    "note": "",
    "summary": "1 worker(s) answered; the broker counts consumers: 1 on celery; silent: "
    "solo@pod (passive declares)",
}


def test_a_silent_worker_is_not_fixed_like_a_task_and_the_broker_count_is_said() -> None:
    report = PlainLines(io.StringIO())
    silent_only = outcome((SILENT,), broker_count=COUNTED)

    lines = [line.split(" ", 1)[1] for line in _finished(report, silent_only).splitlines()]

    assert lines == [
        "verdict: blocked (exit 1), gate run #7: 1 blocker(s)",
        f"broker: {COUNTED['summary']}",
        "blocker: solo@pod (silent): alive but silent",
        "Do not deploy now: consumers are restored. A worker that does not answer may be "
        "running anything: try again once its task ends. Run long tasks on a prefork or "
        "threads pool, with remote control on, so a gate can drain them.",
    ]
    valid_report(silent_only.as_json())


def test_with_tasks_and_a_silent_worker_both_next_steps_are_said() -> None:
    both = outcome((blocker("app.tasks.report", "active"), SILENT), broker_count=COUNTED)

    text = summary_markdown(both)

    assert f"**Broker:** {COUNTED['summary']}" in text
    assert "Make the tasks in the table acks_late" in text
    assert "A worker that does not answer may be running anything" in text


def _finished(report: PlainLines, result: Outcome) -> str:
    report.finish(result)
    return report.stream.getvalue()  # type: ignore[attr-defined]


def test_a_dry_run_lists_every_task_held_and_tells_a_kind_from_a_verdict() -> None:
    tasks = [
        TaskReport("t1", "app.report", "w1@a", "active", "blocking", 12.0, True),
        TaskReport("t2", "app.report", "w1@a", "reserved", "blocking", None, True),
        TaskReport("t3", "app.export", "w2@a", "scheduled", "blocking", None, False),
        TaskReport("t4", "app.resize", "w1@a", "active", "interruptible", 3.0, False),
    ]
    dry = outcome(
        (blocker("app.report", "active", n=1), blocker("app.report", "reserved", n=2)),
        dry_run=True,
        tasks=tasks,
        restore_problems=None,
    )

    held = [line for line in verdict_lines(dry, with_args=False) if line.startswith("held: ")]

    assert held == [
        "held: app.report: 1 active, 1 reserved on w1@a (blocking): blocks a deploy",
        "held: app.export: 1 scheduled on w2@a (blocking): blocks nothing",
        "held: app.resize: 1 active on w1@a (interruptible): blocks nothing",
    ]
