"""How a gate ended: the data every renderer reads (plain lines, live view, JSON, CI files).

One shape for every exit, errors and dry runs included, so ``--json`` prints the same keys
whatever happened (the command contract, docs/usage.md: keys may be added, never change
meaning).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taskmaster.exits import ExitCode, GateError, signal_exit
from taskmaster.gate.inspection import TaskSeen, queue_names
from taskmaster.gate.registry import Registry
from taskmaster.gate.rules import Blocker, Gate, Verdict, classification_of


@dataclass(frozen=True)
class WorkerReport:
    hostname: str
    queues: tuple[str, ...]  # what it consumed before the drain (what a restore puts back)
    lease: bool  # holds the drain lease (runs taskmaster.tasks)

    def as_json(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "queues": list(self.queues), "lease": self.lease}


def worker_reports(gate: Gate) -> list[WorkerReport]:
    return [
        WorkerReport(worker, tuple(sorted(queue_names(queues))), worker in gate.leased)
        for worker, queues in sorted(gate.snapshot.items())
    ]


@dataclass(frozen=True)
class TaskReport:
    """One task a worker holds, as a dry run saw it: what it is and whether it blocks."""

    id: str
    name: str
    worker: str
    state: str  # active | reserved | scheduled
    classification: str  # interruptible | short | blocking | unknown
    runtime_seconds: float | None
    blocks: bool

    def as_json(self) -> dict[str, Any]:
        runtime = None if self.runtime_seconds is None else round(self.runtime_seconds, 1)
        return {
            "id": self.id,
            "name": self.name,
            "worker": self.worker,
            "state": self.state,
            "classification": self.classification,
            "runtime_seconds": runtime,
            "blocks": self.blocks,
        }


@dataclass
class Outcome:
    verdict: Verdict
    started_at: datetime
    timeout: float
    interval: float
    hold: float
    broker: str = ""
    dry_run: bool = False
    run_id: int | None = None
    workers: list[WorkerReport] = field(default_factory=list)
    blockers: tuple[Blocker, ...] = ()
    tasks: list[TaskReport] = field(default_factory=list)  # every task of the last look
    scope: dict[str, Any] = field(default_factory=dict)  # a selective drain's filter
    out_of_scope: list[str] = field(default_factory=list)  # workers seen, not drained
    expected_clear_at: datetime | None = None  # when every blocker is bounded
    redelivery: dict[str, Any] = field(default_factory=dict)  # the broker's, for acks_late
    gone: list[str] = field(default_factory=list)  # workers that shut down cleanly mid-drain
    # What the broker counted beside the workers' answers (fleet.py's as_json): {} when the
    # gate ended before it asked.
    broker_count: dict[str, Any] = field(default_factory=dict)
    restore_problems: list[str] | None = None  # None: no restore was due
    signum: int | None = None  # the stop signal, for an interrupted gate
    failure: GateError | None = None  # what ended the gate, for an error
    notes: list[str] = field(default_factory=list)
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    hold_until: datetime | None = None  # after a clear: until when the lease holds the drain

    @classmethod
    def failed(cls, failure: GateError, *, dry_run: bool = False) -> Outcome:
        """An error before the gate knew its timings or its broker (they are filled in if
        it gets that far)."""
        now = datetime.now(UTC)
        return cls(
            Verdict.ERROR,
            now,
            timeout=0.0,
            interval=0.0,
            hold=0.0,
            dry_run=dry_run,
            failure=failure,
        )

    @classmethod
    def of(cls, gate: Gate, verdict: Verdict, *, hold: float, broker: str, **given: Any) -> Outcome:
        """How ``gate`` ended, with its times; ``given``: the other fields."""
        started_at = datetime.fromtimestamp(gate.started_at, UTC)
        return cls(verdict, started_at, gate.timeout, gate.interval, hold, broker, **given)

    @property
    def exit_code(self) -> int:
        if self.restore_problems:
            return ExitCode.RESTORE_INCOMPLETE
        if self.failure is not None:
            return self.failure.exit_code
        if self.verdict == Verdict.INTERRUPTED and self.signum:
            return signal_exit(self.signum)
        return ExitCode.CLEAR if self.verdict == Verdict.CLEAR else ExitCode.BLOCKED

    @property
    def restored(self) -> bool | None:
        return None if self.restore_problems is None else not self.restore_problems

    def as_json(self, *, with_args: bool = False) -> dict[str, Any]:
        """The report of the command contract (docs/usage.md), on every exit."""
        return {
            "verdict": str(self.verdict),
            "exit_code": int(self.exit_code),
            "dry_run": self.dry_run,
            "error": str(self.failure) if self.failure is not None else None,
            "run_id": self.run_id,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "timeout": self.timeout,
            "interval": self.interval,
            "hold": self.hold,
            "hold_until": _iso(self.hold_until),
            "broker": self.broker,
            "workers": [w.as_json() for w in self.workers],
            "blockers": [b.as_json(with_args=with_args) for b in self.blockers],
            "tasks": [t.as_json() for t in self.tasks],
            "scope": self.scope,
            "out_of_scope": sorted(self.out_of_scope),
            "expected_clear_at": _iso(self.expected_clear_at),
            "redelivery": self.redelivery,
            "gone": sorted(self.gone),
            "broker_count": self.broker_count or None,
            "restored": self.restored,
            "restore_problems": self.restore_problems or [],
            "notes": self.notes,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def task_reports(
    tasks: Iterable[TaskSeen], registry: Registry, blockers: Iterable[Blocker], *, now: float
) -> list[TaskReport]:
    """Every task a look saw, with what stopping its worker would do to it."""
    blocking = {(b.id, b.worker) for b in blockers}
    return [
        TaskReport(
            id=t.id,
            name=t.name,
            worker=t.worker,
            state=t.state,
            classification=str(classification_of(t, registry)),
            runtime_seconds=now - t.time_start if t.time_start else None,
            blocks=(t.id, t.worker) in blocking,
        )
        for t in tasks
    ]
