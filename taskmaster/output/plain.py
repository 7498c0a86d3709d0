"""Renders a gate for people: plain timestamped lines, or a live view on a terminal (live.py).

The core returns data; this and ``live.py`` are the only modules that format it. Blockers
are grouped by task name, worst first, at most a screenful, so a backlog of thousands reads
in a glance; a poll that saw the same picture as the last one prints nothing new.
``--json`` output is ``Outcome.as_json()``, which keeps every blocker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import IO, TYPE_CHECKING, Any

from taskmaster.exits import ExitCode
from taskmaster.gate import Blocker, Decision, Gate, Verdict
from taskmaster.outcome import Outcome
from taskmaster.streams import SafeStream, safe

if TYPE_CHECKING:
    from taskmaster.live import LiveReport

SCREENFUL = 10  # task groups (or workers) shown at once; the rest are counted
STATE_ORDER = ("active", "reserved", "scheduled")
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


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = max(0, int(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


@dataclass(frozen=True)
class TaskGroup:
    """The blockers of one task name: how many, in which states, the oldest, and why."""

    name: str
    classification: str
    states: tuple[tuple[str, int], ...]  # (state, count), running first
    workers: tuple[str, ...]
    oldest: float | None  # the longest a task of this group has run
    reason: str  # why the worst of them blocks
    args: str  # the arguments of the oldest, when shown

    @property
    def count(self) -> int:
        return sum(n for _, n in self.states)

    def line(self, *, with_args: bool) -> str:
        states = ", ".join(f"{n:,} {state}" for state, n in self.states)
        on = ", ".join(self.workers[:3]) + (
            f" and {len(self.workers) - 3} more" if len(self.workers) > 3 else ""
        )
        oldest = f", oldest running {seconds(self.oldest)}" if self.oldest is not None else ""
        args = f", args {self.args}" if with_args and self.args else ""
        return f"{self.name}: {states} on {on}{oldest} ({self.classification}{args}): {self.reason}"


def worst_first(
    blockers: tuple[Blocker, ...] | list[Blocker],
) -> tuple[list[Blocker], list[TaskGroup]]:
    """Worker blockers (each a line of its own), then task groups, the worst first."""
    workers = [b for b in blockers if not b.name]
    by_name: dict[str, list[Blocker]] = {}
    for b in blockers:
        if b.name:
            by_name.setdefault(b.name, []).append(b)
    groups = [_group(name, members) for name, members in by_name.items()]
    # Running blocking tasks first (only time ends them), then the longest running, the most.
    groups.sort(
        key=lambda g: (
            g.classification == "short",
            dict(g.states).get("active", 0) == 0,
            -(g.oldest or 0),
            -g.count,
            g.name,
        )
    )
    return workers, groups


def _group(name: str, members: list[Blocker]) -> TaskGroup:
    counts = Counter(b.state for b in members)
    runtimes = [b for b in members if b.runtime_seconds is not None]
    oldest = max(runtimes, key=lambda b: b.runtime_seconds or 0) if runtimes else None
    worst = min(members, key=lambda b: STATE_ORDER.index(b.state) if b.state in STATE_ORDER else 9)
    return TaskGroup(
        name=name,
        classification=members[0].classification,
        states=tuple((s, counts[s]) for s in STATE_ORDER if counts[s]),
        workers=tuple(sorted({b.worker for b in members})),
        oldest=oldest.runtime_seconds if oldest else None,
        reason=worst.reason,
        args=(oldest or worst).args,
    )


def blocker_lines(blockers: tuple[Blocker, ...], *, with_args: bool) -> list[str]:
    """At most a screenful of lines, the worst first, and how many more there are."""
    workers, groups = worst_first(blockers)
    lines = [f"{b.worker} ({b.state}): {b.reason}" for b in workers]
    lines += [g.line(with_args=with_args) for g in groups]
    if len(lines) > SCREENFUL:
        rest = groups[max(0, SCREENFUL - len(workers)) :]
        more = f"… and {len(rest)} more task name(s) ({sum(g.count for g in rest):,} blockers)"
        lines = [*lines[:SCREENFUL], f"{more}: the JSON report (--json) lists every one"]
    return lines


def picture(blockers: tuple[Blocker, ...]) -> tuple[Any, ...]:
    """What a person should hear about again when it changes (runtimes grow: not those)."""
    workers, groups = worst_first(blockers)
    return (
        tuple((b.worker, b.state) for b in workers),
        tuple((g.name, g.states, g.workers) for g in groups),
    )


def counted(blockers: tuple[Blocker, ...]) -> str:
    if not blockers:
        return "no blockers"
    names = len({b.name for b in blockers if b.name})
    return f"{len(blockers):,} blocker(s)" + (f" ({names} task name(s))" if names else "")


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
    lines += [f"not restored: {p}" for p in outcome.restore_problems or []]
    if outcome.hold_until:
        lines.append(f"drain held until {outcome.hold_until:%H:%M:%S %Z} by the workers' lease")
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


def next_steps(outcome: Outcome) -> list[str]:
    """What to do now; a silent worker is not fixed the way a blocking task is."""
    silent = any(b.state == "silent" for b in outcome.blockers)
    if outcome.verdict == Verdict.BLOCKED and silent and all(not b.name for b in outcome.blockers):
        return [f"Do not deploy now: consumers are restored. {SILENT_STEP}"]
    return [NEXT_STEP[outcome.verdict], *([SILENT_STEP] if silent else [])]


class PlainReport:
    """Timestamped lines for CI logs and pipes; an error's lines go to the error stream."""

    def __init__(
        self, stream: IO[str], *, errors: IO[str] | None = None, with_args: bool = False
    ) -> None:
        self.stream = safe(stream)
        self.errors = safe(errors) if errors is not None else self.stream
        self.with_args = with_args
        self.last: tuple[Any, ...] | None = None

    def line(self, text: str, *, stream: SafeStream | None = None) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
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
            f"{seconds(gate.deadline - now)} left"
        )
        for text in blocker_lines(decision.blockers, with_args=self.with_args):
            self.line(f"  {text}")

    def finish(self, outcome: Outcome) -> None:
        stream = self.errors if outcome.failure is not None else self.stream
        for text in verdict_lines(outcome, with_args=self.with_args):
            self.line(text, stream=stream)

    def close(self) -> None:
        self.stream.flush()


def human_report(stream: Any, *, errors: Any, with_args: bool) -> PlainReport | LiveReport:
    """A live view on a terminal, plain lines otherwise (CI, pipes, files)."""
    if safe(stream).isatty():
        from taskmaster.live import LiveReport  # rich is loaded only for a person's terminal

        return LiveReport(stream, with_args=with_args)
    return PlainReport(stream, errors=errors, with_args=with_args)
