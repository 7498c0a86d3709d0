"""The readiness page's guarded actions, the work behind the buttons (the views check the
permissions): whether a gate may start now, and resuming the consumers of a drain with each
worker's restore verified. The gate itself runs in the background (``launch.py``).
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from datetime import datetime

from taskmaster.admin.launches import own_gate, running
from taskmaster.drain.recovery import resume_consumers
from taskmaster.models import GateRun

logger = logging.getLogger("taskmaster")

STOP_WAIT = 20.0  # seconds Resume waits for a gate it stopped to restore its consumers


def refusal(now: datetime) -> str | None:
    """Why a gate must not start now, or None."""
    runs = GateRun.objects.to_resume(now)
    if runs:
        return (
            f"Gate run #{runs[0].pk} still holds the workers drained: resume its consumers, or "
            "wait for it to end, before preparing another deploy."
        )
    started = running()
    if started is not None:
        return f"A gate started by {started.requested_by} is still starting (pid {started.pid})."
    return None


@dataclass(frozen=True)
class WorkerRestore:
    run_id: int
    hostname: str
    queues: tuple[str, ...]
    verified: bool
    problem: str = ""


@dataclass
class Resumption:
    workers: list[WorkerRestore] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)  # what resume_consumers said
    error: str | None = None


def resume(user: str, address: str, *, now: datetime) -> Resumption:
    """Put back the consumers of every drain ``GateRun.objects.to_resume`` lists, and say per
    worker whether the restore was verified. A gate this process runs is stopped instead
    (SIGTERM): it restores and verifies its own consumers, as on any stop signal."""
    runs = GateRun.objects.to_resume(now)
    result = Resumption()
    for run in runs:
        launch = own_gate(run)
        if launch is None:
            continue
        launch.process.send_signal(signal.SIGTERM)
        if not launch.done.wait(STOP_WAIT):
            result.sentences.append(f"gate run #{run.pk} is still restoring its consumers")
        GateRun.objects.filter(pk=run.pk).update(resumed_by=user[:150], resumed_from=address[:100])
    outcome = resume_consumers(
        None, ignore_missing=False, say=result.sentences.append, requested=(user, address)
    )
    result.error = outcome.error
    for run in GateRun.objects.filter(pk__in=[r.pk for r in runs]).defer("report"):
        result.workers += _per_worker(run)
    logger.info("admin: %s (from %s) resumed consumers: %s", user, address, outcome.exit_code)
    return result


def _per_worker(run: GateRun) -> list[WorkerRestore]:
    """Each recorded worker of ``run``: verified once its restore is complete, or when a
    partial restore's problems do not name it."""
    complete = not run.is_open and run.restored_at is not None
    gone = GateRun.objects.filter(pk=run.pk).values_list("report__gone", flat=True).first()
    rows = []
    for worker, declarations in sorted((run.snapshot or {}).items()):
        queues = tuple(sorted(q["name"] for q in declarations))
        problem = next((p for p in run.restore_problems if p.startswith(f"{worker} ")), "")
        if worker in (gone or []):
            problem = "shut down during the drain: its restart gives it its queues"
        elif not complete and not run.restore_problems:
            problem = "not restored: the drain is still open"
        rows.append(WorkerRestore(run.pk, worker, queues, not problem, problem))
    return rows
