"""The readiness page's picture: "can we deploy now?", from a look and the open drain.

Pure logic over what the lookout saw (a dry run's outcome) and what the database says of
drains (``DrainState``), so the rules read, and are tested, without a broker. The words are
the command's: a task is interruptible, short or blocking; a blocker is what a stop would
lose; a drain is open until its consumers are back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from django.utils import timezone as django_timezone

from taskmaster.changelist import human_duration
from taskmaster.forecast import expected_clear
from taskmaster.lookout import Look, Sight
from taskmaster.outcome import Outcome, TaskReport

SHOWN_PER_WORKER = 10  # task rows per worker; the rest are counted (a backlog is thousands)
STATE_ORDER = {"active": 0, "reserved": 1, "scheduled": 2}


def clock(moment: datetime | float) -> str:
    """A moment as the page shows it: the time of day in the current time zone."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, timezone.utc)
    local = django_timezone.localtime(moment)
    return f"{local:%H:%M:%S} {local.tzname()}"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


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
        return human_duration(self.runtime_seconds)

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


def headline(
    sight: Sight, *, drain: DrainState | None, fleet: list[str], now: float, budget: float
) -> Headline:
    """The one sentence at the top of the page (see docs/admin.md for each case)."""
    look = sight.look
    if sight.overdue_since is not None:
        waited = now - sight.overdue_since
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
        held = Counter(t.classification for t in outcome.tasks)
        running = ", ".join(f"{n:,} {kind}" for kind, n in sorted(held.items()))
        return Headline(
            "safe",
            "Safe to deploy",
            "No worker runs or holds a task that a stop would lose"
            + (f" ({running} held)." if running else "."),
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
    unbounded = sorted(
        {b.name or b.worker for b in look.outcome.blockers if _limit(look, b.name) is None}
    )
    return f"No hard time limit bounds {', '.join(unbounded[:3])}: the wait cannot be told."


def _limit(look: Look, name: str) -> float | None:
    info = look.registry.get(name)
    return info.time_limit if info is not None else None


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
    return (not task.blocks, STATE_ORDER.get(task.state, 9), -(task.runtime_seconds or 0.0))


def _row(task: TaskReport, look: Look, args: dict[tuple[str, str], str]) -> TaskRow:
    limit = _limit(look, task.name)
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
