"""The drains the readiness page shows and can undo: open ones, and a clear verdict still held.

A drain is open while a gate waits, or after a gate that could not restore every consumer
(exit 5) or died before its verdict. A clear verdict closes its run, but its workers stay
drained, held by their lease until they restart (the deploy) or the hold runs out: until
then a called-off deploy needs a resume too (``resume_consumers`` restores that run).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from taskmaster import records
from taskmaster.gate import Verdict
from taskmaster.models import GateRun
from taskmaster.readiness import DrainState


def held_clear(now: datetime) -> GateRun | None:
    """The latest run, if it cleared and the workers' lease still holds them drained."""
    latest = GateRun.objects.defer("report").first()
    if (
        latest is not None
        and not latest.is_open
        and latest.verdict == Verdict.CLEAR
        and latest.restored_at is None
        and latest.lease_until is not None
        and latest.lease_until > now
    ):
        return latest
    return None


def to_resume(now: datetime) -> list[GateRun]:
    """What Resume consumers puts back: the open drains, else a clear verdict still held
    (the runs ``resume_consumers`` restores, the held clear only while its lease runs)."""
    runs = list(GateRun.objects.open().defer("report").order_by("started_at", "pk"))
    if runs:
        return runs
    held = held_clear(now)
    return [held] if held is not None else []


def requester(run: GateRun) -> str:
    """Who started a run: the admin user and address, or the command's user, host and pid."""
    if run.requested_by:
        where = f" from {run.requested_from}" if run.requested_from else ""
        return f"{run.requested_by} (admin{where})"
    return run.opened_by


def drain_state(run: GateRun, now: datetime) -> DrainState:
    workers = tuple(sorted(run.snapshot or {}))
    by = requester(run)
    if not run.is_open:
        since = run.finished_at or run.started_at
        return DrainState(run.pk, "held", since, by, until=run.lease_until, workers=workers)
    if run.verdict:
        shown = "; ".join(run.restore_problems[:2]) or "its restore did not finish"
        problem = f"some consumers could not be restored ({shown})"
        return DrainState(run.pk, "stuck", run.started_at, by, problem=problem, workers=workers)
    if records.gate_alive(run) is False:
        problem = f"its gate (pid {run.pid}) is gone, killed before it restored the consumers"
        return DrainState(run.pk, "stuck", run.started_at, by, problem=problem, workers=workers)
    deadline = run.started_at + timedelta(seconds=run.timeout)
    left = (deadline - now).total_seconds()
    return DrainState(
        run.pk, "running", run.started_at, by, left=left, until=run.lease_until, workers=workers
    )


def current_drain(now: datetime) -> DrainState | None:
    """The drain the page's headline speaks of: the oldest open one, else a held clear."""
    runs = to_resume(now)
    return drain_state(runs[0], now) if runs else None
