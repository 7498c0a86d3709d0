"""When the blockers can be expected to end, from what bounds them: pure logic, no I/O.

A non-interruptible task with a hard ``time_limit`` ends by then at the latest (the worker
kills it); an ETA task cannot start before it is due. When every blocker is bounded, the
gate can say by when it expects to clear, and a deadline that comes before says so at once.
The figure is a bound, not a guess: tasks usually end sooner.

``--fail-fast`` gives up at once on a blocker nothing bounds that has already run longer
than the time left. Of a task seen running for T, with nothing else known, the best bet is
that it runs about T more (half of such tasks run at least as long again), so a task older
than the time left is more likely than not to be running still at the deadline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from taskmaster.gate.inspection import TaskSeen
from taskmaster.gate.registry import Registry, time_limit
from taskmaster.gate.rules import Blocker, Gate
from taskmaster.humanize import clock


class Forecast:
    """What a gate says ahead of time, each once: by when it expects to clear, that its
    deadline comes first, a blocker it gives up on (--fail-fast), and ETA tasks that a
    broker with a visibility timeout (Redis) will deliver twice."""

    def __init__(self, gate: Gate, *, fail_fast: bool, redelivery: dict[str, Any]) -> None:
        self.gate = gate
        self.fail_fast = fail_fast
        self.visibility_timeout = redelivery.get("visibility_timeout")
        self.transport = redelivery.get("transport", "the broker")
        self.expected: float | None = None  # when the blockers will have ended, if bounded
        self.warned: set[str] = set()  # ETA tasks already warned about

    def look(self, blockers: tuple[Blocker, ...], *, now: float) -> tuple[list[str], bool]:
        """The notes to make after a poll, and whether to give up at once."""
        gate, notes = self.gate, []
        expected = expected_clear(blockers, gate.registry, now=now)
        if expected is not None and (self.expected is None or abs(expected - self.expected) > 1):
            text = f"clear expected by {clock(expected)}, in {expected - now:.0f} s"
            if expected > gate.deadline:
                needed = expected - gate.started_at
                text += (
                    f", after the deadline ({clock(gate.deadline)}): unless the tasks end "
                    f"sooner, this gate ends blocked (--timeout {needed:.0f} would be long enough)"
                )
            notes.append(text)
        self.expected = expected
        late = hopeless(blockers, gate.registry, deadline=gate.deadline, now=now)
        if not (self.fail_fast and late):
            return notes, False
        worst = max(late, key=lambda b: b.runtime_seconds or 0)
        notes.append(
            f"giving up at once (--fail-fast): {worst.name}[{worst.id}] has run "
            f"{worst.runtime_seconds or 0:.0f} s with no time limit, longer than the "
            f"{gate.deadline - now:.0f} s left"
        )
        return notes, True

    def redelivered_twice(self, tasks: Iterable[TaskSeen], *, now: float) -> list[str]:
        """A warning for ETA tasks due after the visibility timeout: delivered twice."""
        timeout = self.visibility_timeout
        if not timeout:
            return []
        late = [
            t
            for t in tasks
            if t.eta is not None and t.eta.timestamp() - now > timeout and t.id not in self.warned
        ]
        if not late:
            return []
        self.warned |= {t.id for t in late}
        names = ", ".join(sorted({t.name for t in late}))
        return [
            f"warning: {len(late)} ETA task(s) ({names}) are due more than the visibility "
            f"timeout ({timeout:g} s) from now: {self.transport} will deliver them again while "
            "they wait, so each will run twice"
        ]


def expected_clear(blockers: Iterable[Blocker], registry: Registry, *, now: float) -> float | None:
    """The time by which every blocker will have ended, or None if one has no bound.

    Prefetched tasks wait for a free process; as the worker's concurrency is unknown here,
    they are counted one after the other behind its running tasks: an upper bound.
    """
    busy_until: dict[str, float] = {}  # per worker: when its running or due tasks end
    waiting: dict[str, float] = {}  # per worker: the time limits of its prefetched tasks
    for b in blockers:
        limit = time_limit(registry, b.name)
        if limit is None or not b.name:
            return None  # a silent worker, a task with no hard time limit: no bound
        if b.state == "active":
            started = now - (b.runtime_seconds or 0.0)
            end = started + limit
        elif b.state == "scheduled" and b.eta is not None:
            end = max(b.eta, now) + limit
        else:  # reserved: it starts when a process is free
            waiting[b.worker] = waiting.get(b.worker, 0.0) + limit
            continue
        busy_until[b.worker] = max(busy_until.get(b.worker, now), end)
    ends = [busy_until.get(w, now) + queued for w, queued in waiting.items()]
    ends += busy_until.values()
    return max(ends, default=now)


def hopeless(
    blockers: Iterable[Blocker], registry: Registry, *, deadline: float, now: float
) -> list[Blocker]:
    """Running blockers that nothing bounds and that have already run longer than the time
    left: the ones ``--fail-fast`` gives up on (see the module's docstring)."""
    left = deadline - now
    return [
        b
        for b in blockers
        if b.state == "active"
        and time_limit(registry, b.name) is None
        and (b.runtime_seconds or 0.0) >= left
    ]
