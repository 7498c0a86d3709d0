"""A gate in plain timestamped lines, for CI logs and pipes; and the verdict's lines and next
steps, which the live view (``live.py``) and the CI summary (``ci.py``) say too.

A poll that saw the same picture as the last one prints nothing new; blockers read as the
blocker table draws them (``blockers.py``). ``--json`` output is ``Outcome.as_json()``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import IO, Any

from taskmaster.exits import ExitCode
from taskmaster.gate.inspection import TASK_STATES
from taskmaster.gate.outcome import Outcome, TaskReport
from taskmaster.gate.rules import Blocker, Decision, Gate, Verdict
from taskmaster.humanize import clock, duration, some
from taskmaster.output.blockers import SCREENFUL, blocker_table, counted, picture
from taskmaster.output.streams import SafeStream, safe

NEXT_STEP = {
    Verdict.CLEAR: (
        "Safe to stop the workers: deploy now. Their consumers stay cancelled, held by the drain "
        "lease until the workers restart (or the hold runs out). Deploy called off? Run "
        "./manage.py resume_consumers."
    ),
    Verdict.BLOCKED: (
        "Do not deploy now: consumers are restored. Make the tasks above acks_late and "
        "idempotent, or bound them with a short time_limit, then try again."
    ),
    Verdict.INTERRUPTED: "The gate was stopped; consumers are restored. Nothing else to do.",
    Verdict.ERROR: "The gate could not finish: see the error above.",
}
SILENT_STEP = (
    "A worker that does not answer may be running anything: try again once its task ends. Run "
    "long tasks on a prefork or threads pool, with remote control on, so a gate can drain them."
)
DRY_RUN = {
    Verdict.CLEAR: "Dry run: nothing would block a deploy now. Nothing was cancelled.",
    Verdict.BLOCKED: (
        "Dry run: a gate now would wait for the blockers above. Nothing was cancelled."
    ),
}
RESTORE_FAILED = (
    "Some consumers could not be restored (listed). Fix what is named, then run "
    "./manage.py resume_consumers; the drain stays open until it succeeds."
)


def blocker_lines(blockers: tuple[Blocker, ...], *, with_args: bool) -> list[str]:
    """The blocker table as lines: a screenful at most, and how much more there is."""
    rows, rest = blocker_table(blockers)
    lines = [row.line(with_args=with_args) for row in rows]
    if rest is not None:
        lines.append(f"{rest.line()}: the JSON report (--json) lists every one")
    return lines


def summary(outcome: Outcome) -> str:
    kind = "dry run, " if outcome.dry_run else ""
    run = f", gate run #{outcome.run_id}" if outcome.run_id else ""
    tail = f": {counted(outcome.blockers)}" if outcome.blockers else ""
    return f"verdict: {outcome.verdict} ({kind}exit {outcome.exit_code}){run}{tail}"


def verdict_lines(outcome: Outcome, *, with_args: bool) -> list[str]:
    """The verdict, what blocked it, what could not be restored, and what to do next."""
    lines = [summary(outcome)]
    if outcome.failure is not None:
        lines.append(f"error: {outcome.failure}")
    if outcome.broker_count:
        lines.append(f"broker: {outcome.broker_count['summary']}")
    lines += [f"blocker: {line}" for line in blocker_lines(outcome.blockers, with_args=with_args)]
    if outcome.dry_run:  # a look at the fleet: every task it holds, blocking or not
        lines += [f"held: {line}" for line in held_lines(outcome.tasks)]
    lines += [f"not restored: {p}" for p in outcome.restore_problems or []]
    if outcome.hold_until:
        lines.append(f"drain held until {clock(outcome.hold_until)} by the workers' lease")
    if outcome.restore_problems:
        lines.append(RESTORE_FAILED)
    elif outcome.dry_run and outcome.verdict in DRY_RUN:
        lines.append(DRY_RUN[outcome.verdict])
    elif outcome.verdict == Verdict.CLEAR and not outcome.workers:
        scope = " in this drain's scope" if outcome.scope else ""
        lines.append(f"Nothing to drain: no worker{scope} answered. Deploy whenever you like.")
    elif outcome.failure is None or outcome.exit_code == ExitCode.GATE_FAILED:
        lines += next_steps(outcome)
    return lines


def held_lines(tasks: Sequence[TaskReport]) -> list[str]:
    """Every task the workers hold, by name: how many in which states, on which workers, of
    which kind, and whether they block a deploy (a kind is not a verdict)."""
    by_name: dict[str, list[TaskReport]] = {}
    for task in tasks:
        by_name.setdefault(task.name, []).append(task)
    lines = []
    for name, held in sorted(by_name.items(), key=lambda item: (-len(item[1]), item[0])):
        counts = Counter(t.state for t in held)
        states = ", ".join(f"{counts[s]:,} {s}" for s in TASK_STATES if counts[s])
        workers = some(sorted({t.worker for t in held}), 3)
        blocking = sum(t.blocks for t in held)
        verdict = (
            "blocks a deploy"
            if blocking == len(held)
            else (f"{blocking:,} block a deploy" if blocking else "blocks nothing")
        )
        lines.append(f"{name}: {states} on {workers} ({held[0].classification}): {verdict}")
    if len(lines) > SCREENFUL:
        lines = [
            *lines[:SCREENFUL],
            f"… and {len(lines) - SCREENFUL:,} more task name(s): --json lists every task",
        ]
    return lines


def next_steps(outcome: Outcome) -> list[str]:
    """What to do now; a silent worker is not fixed the way a blocking task is."""
    silent = any(b.state == "silent" for b in outcome.blockers)
    if outcome.verdict == Verdict.BLOCKED and silent and all(not b.name for b in outcome.blockers):
        return [f"Do not deploy now: consumers are restored. {SILENT_STEP}"]
    return [NEXT_STEP[outcome.verdict], *([SILENT_STEP] if silent else [])]


class PlainLines:
    """Timestamped lines for CI logs and pipes; an error's lines go to the error stream."""

    def __init__(
        self,
        stream: IO[str] | SafeStream,
        *,
        errors: IO[str] | SafeStream | None = None,
        with_args: bool = False,
    ) -> None:
        self.stream = safe(stream)
        self.errors = safe(errors) if errors is not None else self.stream
        self.with_args = with_args
        self.last: tuple[Any, ...] | None = None

    def line(self, text: str, *, stream: SafeStream | None = None) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        out = stream or self.stream
        out.write(f"{stamp} {text}\n")
        out.flush()

    def note(self, text: str) -> None:
        self.line(text)

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        now_picture = (len(gate.workers), picture(decision.blockers))
        if now_picture == self.last:
            return  # nothing new to say: the same blockers as the last poll
        self.last = now_picture
        self.line(
            f"poll: {len(gate.workers)} worker(s), {counted(decision.blockers)}, "
            f"{duration(gate.deadline - now)} left"
        )
        for text in blocker_lines(decision.blockers, with_args=self.with_args):
            self.line(f"  {text}")

    def finish(self, outcome: Outcome) -> None:
        stream = self.errors if outcome.failure is not None else self.stream
        for text in verdict_lines(outcome, with_args=self.with_args):
            self.line(text, stream=stream)

    def close(self) -> None:
        self.stream.flush()
