"""The drain as a state machine over snapshots and a clock: pure logic, no I/O.

``drain.py`` feeds it what ``cluster.py`` saw (which workers consume what, which tasks
they hold, who answered) together with the time; the gate says what to cancel, who
blocks and when the verdict is reached. Unit tests drive it with recorded snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import TextChoices

from taskmaster.gate.inspection import Inspection, Queues, TaskSeen, queue_names
from taskmaster.gate.registry import Classification, Registry
from taskmaster.gate.scope import Scope


class Verdict(TextChoices):
    """How a gate ended; the one definition (GateRun.verdict uses it too)."""

    CLEAR = "clear", "clear"
    BLOCKED = "blocked", "blocked"
    INTERRUPTED = "interrupted", "interrupted"
    ERROR = "error", "error"


@dataclass(frozen=True)
class Blocker:
    """Something that makes "stop the workers now" unsafe."""

    id: str  # the task id; the hostname for a worker that does not answer
    name: str  # the task name; "" for a worker
    worker: str
    state: str  # active | reserved | scheduled | unresponsive | consuming | duplicate | silent
    runtime_seconds: float | None
    classification: str
    reason: str
    args: str = ""
    eta: float | None = None  # when a scheduled task is due (wall-clock seconds)
    # For a worker that stopped answering: the tasks it was last seen holding. If it was
    # killed, the early-acked ones among them are lost; a deploy now would lose the rest.
    last_seen: tuple[str, ...] = ()

    def as_json(self, *, with_args: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "worker": self.worker,
            "state": self.state,
            "runtime_seconds": (
                None if self.runtime_seconds is None else round(self.runtime_seconds, 1)
            ),
            "classification": self.classification,
            "reason": self.reason,
        }
        if with_args:
            data["args"] = self.args
        if self.last_seen:
            data["last_seen_tasks"] = list(self.last_seen)
        return data


def task_blocker(
    task: TaskSeen, registry: Registry, *, now: float, deadline: float
) -> Blocker | None:
    """Apply the table of docs/gate.md ("What blocks a deploy") to one task; ``None`` if it
    is safe to interrupt."""
    info = registry.get(task.name)
    classification = info.classification if info else Classification.UNKNOWN
    late_ack = info is not None and info.acks_late
    if task.state == "active":
        # The runtime flag is the truth: it reflects the code the worker runs.
        if not task.acknowledged:
            return None
        reason = "acknowledged when it started: stopping the worker now loses it"
    elif task.state == "reserved":
        if late_ack:
            return None
        reason = "prefetched by the worker, which will start it and acknowledge it early"
    else:  # scheduled (ETA)
        if late_ack or (task.eta is not None and task.eta.timestamp() > deadline):
            return None
        reason = "held for its ETA, due before the deadline; it will start and be acknowledged"
    if classification is Classification.SHORT and info is not None:
        reason += f" (short: time_limit {info.time_limit:g} s)"
    runtime = now - task.time_start if task.time_start else None
    return Blocker(
        id=task.id,
        name=task.name,
        worker=task.worker,
        state=task.state,
        runtime_seconds=runtime,
        classification=str(classification),
        reason=reason,
        args=task.args,
        eta=task.eta.timestamp() if task.eta is not None else None,
    )


def classification_of(task: TaskSeen, registry: Registry) -> Classification:
    """What stopping its worker now would do to this task: for a running task, the worker's
    own flag says (a late ack means interruptible); for the others, the registry."""
    if task.state == "active" and not task.acknowledged:
        return Classification.INTERRUPTIBLE
    info = registry.get(task.name)
    return info.classification if info else Classification.UNKNOWN


def worker_blocker(
    worker: str, state: str, reason: str, last_seen: tuple[str, ...] = ()
) -> Blocker:
    return Blocker(
        id=worker,
        name="",
        worker=worker,
        state=state,
        runtime_seconds=None,
        classification="",
        reason=reason,
        last_seen=last_seen,
    )


@dataclass(frozen=True)
class Decision:
    verdict: Verdict | None  # None: keep waiting
    blockers: tuple[Blocker, ...]
    wait_seconds: float  # until the next poll (0 once there is a verdict)


@dataclass
class Gate:
    """One drain: the recorded consumers, the deadline, and the verdict rules."""

    registry: Registry
    started_at: float
    timeout: float
    interval: float
    snapshot: Queues = field(default_factory=dict)  # what a restore puts back
    gone: set[str] = field(default_factory=set)  # workers that left cleanly
    duplicates: set[str] = field(default_factory=set)  # node names two workers answer as
    # The tasks each worker held at the last poll it answered (running or prefetched).
    last_seen: dict[str, tuple[TaskSeen, ...]] = field(default_factory=dict)
    leased: set[str] = field(default_factory=set)  # workers that hold the drain lease
    elsewhere: set[str] = field(default_factory=set)  # workers another drain holds
    scope: Scope = field(default_factory=Scope)  # a selective drain's filter
    out_of_scope: set[str] = field(default_factory=set)  # workers seen but not drained

    @property
    def deadline(self) -> float:
        return self.started_at + self.timeout

    @property
    def workers(self) -> list[str]:
        return sorted(w for w in self.snapshot if w not in self.gone)

    def newcomers(self, queues: Queues) -> Queues:
        """The workers of a discovery that this gate has not drained yet.

        A worker that left and answers again is back in the drain; its recorded queues
        stay as they were before the drain.
        """
        self.gone -= set(queues)
        joined = {
            w: q for w, q in queues.items() if w not in self.snapshot and w not in self.elsewhere
        }
        for worker, declarations in list(joined.items()):
            if not self.scope.admits(worker, queue_names(declarations)):
                self.out_of_scope.add(worker)
                del joined[worker]
        return joined

    def admit(self, queues: Queues) -> None:
        """Record these workers' consumers: this gate drains them and restores them."""
        self.snapshot.update(queues)

    def leave(self, worker: str) -> None:
        """The worker shut down cleanly: not a blocker, nothing to restore on it."""
        self.gone.add(worker)

    def still_consuming(self, queues: Queues) -> dict[str, set[str]]:
        """Recorded queues that a worker still consumes: the cancels still to make."""
        return {
            worker: left
            for worker, recorded in self.snapshot.items()
            if (left := queue_names(recorded) & queue_names(queues.get(worker, [])))
        }

    def blockers(
        self,
        inspection: Inspection,
        consuming: dict[str, set[str]],
        *,
        now: float,
        silent: tuple[Blocker, ...] = (),
    ) -> list[Blocker]:
        """What blocks now; ``silent``: the workers the broker shows alive but that do not
        answer, and consumers it counts that nobody answered for (``silent.py``)."""
        found: list[Blocker] = list(silent)
        for worker in sorted(self.duplicates):
            found.append(
                worker_blocker(
                    worker, "duplicate", "two workers answer as this node: cannot tell them apart"
                )
            )
        for worker in self.workers:
            if worker not in inspection.answered:
                held = tuple(
                    f"{t.name}[{t.id}] ({t.state})" for t in self.last_seen.get(worker, ())
                )
                reason = "does not answer: it may be running anything"
                if held:
                    reason += f"; last seen holding {', '.join(held)}"
                found.append(worker_blocker(worker, "unresponsive", reason, held))
            elif consuming.get(worker):
                queues = ", ".join(sorted(consuming[worker]))
                found.append(
                    worker_blocker(worker, "consuming", f"still consumes {queues}: not drained")
                )
        for task in inspection.tasks:
            blocker = task_blocker(task, self.registry, now=now, deadline=self.deadline)
            if blocker is not None:
                found.append(blocker)
        return found

    def decide(
        self,
        inspection: Inspection,
        consuming: dict[str, set[str]],
        *,
        now: float,
        poll_seconds: float = 0.0,
        silent: tuple[Blocker, ...] = (),
    ) -> Decision:
        """The verdict, or how long to wait for the next poll.

        ``poll_seconds``, how long a poll takes, moves the last poll earlier, so that it
        ends at the deadline instead of starting there: a big backlog makes a poll slow.
        """
        blockers = tuple(self.blockers(inspection, consuming, now=now, silent=silent))
        for worker in inspection.answered:
            self.last_seen[worker] = tuple(t for t in inspection.tasks if t.worker == worker)
        if not blockers:
            return Decision(Verdict.CLEAR, blockers, 0)
        last_start = self.deadline - poll_seconds
        if now >= last_start:
            return Decision(Verdict.BLOCKED, blockers, 0)
        return Decision(None, blockers, min(self.interval, last_start - now))
