"""The blocker table: what every output draws, the same way.

A backlog of thousands must read at a glance: a worker that blocks as a whole (silent,
unresponsive, still consuming) is a row of its own, then each task name is one row (how
many, in which states, on which workers, the oldest, why), the worst first, and what does
not fit is counted in one last line. The plain lines, the live view's table, the GitHub
summary and its annotations all draw these rows; ``--json`` keeps every blocker.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from taskmaster.gate.inspection import TASK_STATES, state_rank
from taskmaster.gate.rules import Blocker
from taskmaster.humanize import duration, some

SCREENFUL = 10  # rows shown at once; the rest are counted


@dataclass(frozen=True)
class BlockerRow:
    """A worker that blocks as a whole, or the blockers of one task name."""

    subject: str  # the worker, or the task name
    states: tuple[tuple[str, int], ...]  # (state, count), running first
    reason: str  # why it blocks (for a task name, why the worst of its tasks does)
    classification: str = ""  # "" for a worker
    workers: tuple[str, ...] = ()
    oldest: float | None = None  # the longest a task of this name has run
    args: str = ""  # the arguments of its oldest task, when shown

    @property
    def is_worker(self) -> bool:
        return not self.workers  # a task name's row names the workers that hold its tasks

    @property
    def count(self) -> int:
        return sum(n for _, n in self.states)

    @property
    def states_text(self) -> str:
        if self.is_worker:
            return self.states[0][0]
        return ", ".join(f"{n:,} {state}" for state, n in self.states)

    def line(self, *, with_args: bool = False) -> str:
        """The row as one line of text."""
        if self.is_worker:
            return f"{self.subject} ({self.states_text}): {self.reason}"
        oldest = f", oldest running {duration(self.oldest)}" if self.oldest is not None else ""
        args = f", args {self.args}" if with_args and self.args else ""
        return (
            f"{self.subject}: {self.states_text} on {some(self.workers, 3)}{oldest} "
            f"({self.classification}{args}): {self.reason}"
        )


@dataclass(frozen=True)
class Rest:
    """The rows left out of a table: workers, task names, and their blockers."""

    workers: int
    names: int
    blockers: int

    def line(self) -> str:
        parts = [f"{self.workers:,} more worker(s)"] if self.workers else []
        parts += [f"{self.names:,} more task name(s)"] if self.names else []
        return f"… and {' and '.join(parts)} ({self.blockers:,} blockers)"


def blocker_table(
    blockers: Sequence[Blocker], *, rows: int = SCREENFUL
) -> tuple[list[BlockerRow], Rest | None]:
    """At most ``rows`` rows, the worst first, and what was left out."""
    table = worst_first(blockers)
    if len(table) <= rows:
        return table, None
    left = table[rows:]
    workers = sum(1 for row in left if row.is_worker)
    return table[:rows], Rest(workers, len(left) - workers, sum(row.count for row in left))


def worst_first(blockers: Sequence[Blocker]) -> list[BlockerRow]:
    """Worker rows, then one row per task name: running blocking tasks first (only time ends
    them), then the longest running, then the most."""
    workers = [BlockerRow(b.worker, ((b.state, 1),), b.reason) for b in blockers if not b.name]
    by_name: dict[str, list[Blocker]] = {}
    for b in blockers:
        if b.name:
            by_name.setdefault(b.name, []).append(b)
    groups = [_group(name, members) for name, members in by_name.items()]
    groups.sort(
        key=lambda g: (
            g.classification == "short",
            dict(g.states).get("active", 0) == 0,
            -(g.oldest or 0),
            -g.count,
            g.subject,
        )
    )
    return workers + groups


def _group(name: str, members: list[Blocker]) -> BlockerRow:
    counts = Counter(b.state for b in members)
    runtimes = [b for b in members if b.runtime_seconds is not None]
    oldest = max(runtimes, key=lambda b: b.runtime_seconds or 0) if runtimes else None
    worst = min(members, key=lambda b: state_rank(b.state))
    return BlockerRow(
        subject=name,
        states=tuple((s, counts[s]) for s in TASK_STATES if counts[s]),
        reason=worst.reason,
        classification=members[0].classification or "unknown",
        workers=tuple(sorted({b.worker for b in members})),
        oldest=oldest.runtime_seconds if oldest else None,
        args=(oldest or worst).args,
    )


def picture(blockers: Sequence[Blocker]) -> tuple[Any, ...]:
    """What a person should hear about again when it changes (runtimes grow: not those)."""
    return tuple((row.subject, row.states, row.workers) for row in worst_first(blockers))


def counted(blockers: Sequence[Blocker]) -> str:
    if not blockers:
        return "no blockers"
    names = len({b.name for b in blockers if b.name})
    return f"{len(blockers):,} blocker(s)" + (f" ({names} task name(s))" if names else "")
