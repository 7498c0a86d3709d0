"""The readiness page's picture: "can we deploy now?", from a look and the open drain.

Pure logic over what a look saw (a dry run's outcome, ``looks.py``) and what the database
says of drains (``DrainState``), so the rules read, and are tested, without a broker. The
words are the command's: a task is interruptible, short or blocking; a blocker is what a
stop would lose; a drain is open until its consumers are back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskmaster.gate.forecast import expected_clear
from taskmaster.gate.inspection import state_rank
from taskmaster.gate.outcome import Outcome, TaskReport
from taskmaster.gate.registry import Registry, time_limit
from taskmaster.humanize import clock, duration, plural
from taskmaster.models import GateRun

SHOWN_PER_WORKER = 10  # task rows per worker; the rest are counted (a backlog is thousands)


@dataclass(frozen=True)
class Look:
    """One dry run, with the registry that classified it (for the forecast)."""

    outcome: Outcome
    asked_at: float  # wall-clock seconds
    answered_at: float
    registry: Registry = field(default_factory=dict)


@dataclass(frozen=True)
class Latest:
    """What a request gets: the latest look, and a newer one that is overdue, if any."""

    look: Look | None  # None: no look has ended yet
    overdue_since: float | None  # wall-clock start of a look still running past the budget
    missing: dict[str, float]  # workers seen lately that the latest look did not hear


@dataclass(frozen=True)
class DrainState:
    """An open drain, or a clear verdict whose drain the workers' lease still holds."""

    run_id: int
    kind: str  # "running": a gate waits; "held": cleared, deploy now; "stuck": needs a resume
    since: datetime
    by: str
    left: float | None = None  # seconds to the gate's deadline, while it runs
    until: datetime | None = None  # until when the workers' drain lease runs
    problem: str = ""  # for "stuck": what is wrong, in a sentence
    workers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Headline:
    tone: str  # safe | blocked | draining | unknown: the colour of the banner
    title: str
    detail: str = ""


@dataclass(frozen=True)
class TaskRow:
    id: str
    name: str
    state: str
    classification: str
    runtime_seconds: float | None
    blocks: bool
    ends_by: float | None  # when its hard time limit ends it at the latest (wall clock)
    args: str = ""  # only when the settings show arguments

    @property
    def running_for(self) -> str:
        return duration(self.runtime_seconds)

    @property
    def ends_by_clock(self) -> str:
        return clock(self.ends_by) if self.ends_by is not None else "-"


@dataclass(frozen=True)
class WorkerRow:
    hostname: str
    queues: tuple[str, ...]  # empty: drained
    lease: bool  # a drained worker that holds the drain lease
    status: str  # answering | unresponsive | silent | duplicate | missing
    tasks: tuple[TaskRow, ...]
    counts: tuple[tuple[str, int], ...]  # (classification, tasks held), blocking first
    more: int  # tasks held but not shown
    reason: str = ""  # for a worker that does not answer: what the broker says of it

    @property
    def drained(self) -> bool:
        return self.status == "answering" and not self.queues


def drain_state(run: GateRun, now: datetime) -> DrainState:
    workers = tuple(sorted(run.snapshot or {}))
    by = run.requester
    if not run.is_open:
        since = run.finished_at or run.started_at
        return DrainState(run.pk, "held", since, by, until=run.lease_until, workers=workers)
    if run.verdict:
        shown = "; ".join(run.restore_problems[:2]) or "its restore did not finish"
        problem = f"some consumers could not be restored ({shown})"
        return DrainState(run.pk, "stuck", run.started_at, by, problem=problem, workers=workers)
    if run.gate_alive() is False:
        problem = f"its gate (pid {run.pid}) is gone, killed before it restored the consumers"
        return DrainState(run.pk, "stuck", run.started_at, by, problem=problem, workers=workers)
    deadline = run.started_at + timedelta(seconds=run.timeout)
    left = (deadline - now).total_seconds()
    return DrainState(
        run.pk, "running", run.started_at, by, left=left, until=run.lease_until, workers=workers
    )


def current_drain(now: datetime) -> DrainState | None:
    """The drain the page's headline speaks of: the oldest open one, else a held clear."""
    runs = GateRun.objects.to_resume(now)
    return drain_state(runs[0], now) if runs else None


def headline(
    latest: Latest, *, drain: DrainState | None, fleet: list[str], now: float, budget: float
) -> Headline:
    """The one sentence at the top of the page (see docs/admin.md for each case)."""
    look = latest.look
    if latest.overdue_since is not None:
        waited = now - latest.overdue_since
        said = (
            f" The last look, at {clock(look.answered_at)}, said: {_seen(look, fleet).title}."
            if look is not None
            else ""
        )
        return Headline(
            "unknown",
            f"No answer from the broker for {waited:.0f} s",
            f"Cannot tell whether a deploy is safe: a look should take {budget:.0f} s at "
            f"most.{said}",
        )
    if drain is not None:
        return _drain_headline(drain, look)
    if look is None:
        return Headline("unknown", "Looking at the workers…")
    return _seen(look, fleet)


def _drain_headline(drain: DrainState, look: Look | None) -> Headline:
    waiting = ""
    if look is not None and look.outcome.failure is None:
        count = sum(1 for b in look.outcome.blockers if b.name)
        waiting = f"It waits for {plural(count, 'task')}." if count else "Nothing blocks it now."
    since = f"since {clock(drain.since)} by {drain.by}"
    if drain.kind == "running":
        left = drain.left or 0.0
        if left >= 0:
            return Headline("draining", f"Drain in progress {since}, {left:.0f} s left", waiting)
        return Headline(
            "draining",
            f"Drain in progress {since}, {-left:.0f} s past its deadline",
            "The gate should have restored the consumers by now; if it is gone, resume them.",
        )
    if drain.kind == "held":
        until = f" until {clock(drain.until)}" if drain.until else ""
        return Headline(
            "safe",
            f"Deploy cleared by gate run #{drain.run_id}: the workers stay drained{until}",
            "Stop and restart the workers now. Deploy called off? Resume consumers.",
        )
    return Headline("unknown", f"Drain open {since}: {drain.problem}", "Resume consumers.")


def _seen(look: Look, fleet: list[str]) -> Headline:
    outcome = look.outcome
    if outcome.failure is not None:
        return Headline("unknown", "Cannot tell whether a deploy is safe", str(outcome.failure))
    silent = [b for b in outcome.blockers if not b.name]
    if not outcome.workers and not silent:
        if fleet:
            return Headline(
                "unknown",
                "No worker answered",
                f"Earlier gates drained {', '.join(fleet[:5])}: is the broker "
                f"({outcome.broker}) the one the workers use?",
            )
        return Headline("safe", "Safe to deploy", "No worker answered: nothing runs.")
    tasks = [b for b in outcome.blockers if b.name]
    if not outcome.blockers:
        # A task's kind (blocking, short…) is not a verdict: an ETA task of the blocking kind
        # due after a gate's deadline blocks nothing now.
        held = ", ".join(f"{n:,} {kind}" for kind, n in totals(outcome))
        count = plural(len(outcome.tasks), "task")
        verb = "blocks" if len(outcome.tasks) == 1 else "block"
        return Headline(
            "safe",
            "Safe to deploy",
            "No worker runs or holds a task that a stop would lose"
            + (f": the {count} held {verb} nothing now (by kind: {held})." if held else "."),
        )
    parts = [plural(len(tasks), "task")] if tasks else []
    if silent:
        parts.append(plural(len(silent), "worker") + " that cannot be asked")
    return Headline("blocked", f"Blocked by {' and '.join(parts)}", _wait(look))


def _wait(look: Look) -> str:
    """The expected wait, where the tasks' hard time limits tell it."""
    now = look.outcome.finished_at.timestamp()
    end = expected_clear(look.outcome.blockers, look.registry, now=now)
    if end is not None:
        return (
            f"Expected to clear by {clock(end)}, in {max(0.0, end - now):.0f} s at most, as "
            "the tasks' hard time limits say."
        )
    blockers = look.outcome.blockers
    unbounded = sorted(
        {b.name or b.worker for b in blockers if time_limit(look.registry, b.name) is None}
    )
    return f"No hard time limit bounds {', '.join(unbounded[:3])}: the wait cannot be told."


def worker_rows(look: Look, missing: dict[str, float], *, with_args: bool) -> list[WorkerRow]:
    """Every worker the look heard, then those that cannot be asked, then those missing."""
    outcome = look.outcome
    by_worker: dict[str, list[TaskReport]] = {}
    for task in outcome.tasks:
        by_worker.setdefault(task.worker, []).append(task)
    args = {(b.id, b.worker): b.args for b in outcome.blockers} if with_args else {}
    status = {b.worker: b.state for b in outcome.blockers if not b.name}
    rows = []
    for worker in outcome.workers:
        held = sorted(by_worker.get(worker.hostname, []), key=_worst_first)
        counts = Counter(t.classification for t in held)
        rows.append(
            WorkerRow(
                hostname=worker.hostname,
                queues=worker.queues,
                lease=worker.lease,
                status=status.get(worker.hostname, "answering"),
                tasks=tuple(_row(t, look, args) for t in held[:SHOWN_PER_WORKER]),
                counts=tuple(sorted(counts.items(), key=lambda kv: _KINDS.index(kv[0]))),
                more=max(0, len(held) - SHOWN_PER_WORKER),
            )
        )
    # Alive at the broker but silent: no answer, so nothing but the broker's word.
    listed = {row.hostname for row in rows}
    rows += [
        WorkerRow(b.worker, (), False, b.state, (), (), 0, b.reason)
        for b in outcome.blockers
        if not b.name and b.worker not in listed
    ]
    listed |= {row.hostname for row in rows}
    rows += [WorkerRow(w, (), False, "missing", (), (), 0) for w in missing if w not in listed]
    return rows


_KINDS = ["blocking", "unknown", "short", "interruptible"]


def _worst_first(task: TaskReport) -> tuple[bool, int, float]:
    return (not task.blocks, state_rank(task.state), -(task.runtime_seconds or 0.0))


def _row(task: TaskReport, look: Look, args: dict[tuple[str, str], str]) -> TaskRow:
    limit = time_limit(look.registry, task.name)
    ends_by = None
    if task.state == "active" and task.runtime_seconds is not None and limit is not None:
        ends_by = look.outcome.finished_at.timestamp() - task.runtime_seconds + limit
    return TaskRow(
        id=task.id,
        name=task.name,
        state=task.state,
        classification=task.classification,
        runtime_seconds=task.runtime_seconds,
        blocks=task.blocks,
        ends_by=ends_by,
        args=args.get((task.id, task.worker), ""),
    )


def totals(outcome: Outcome) -> tuple[tuple[str, int], ...]:
    """Tasks held across the fleet, by classification: the page's one-line summary."""
    counts = Counter(t.classification for t in outcome.tasks)
    return tuple((kind, counts[kind]) for kind in _KINDS if counts[kind])
