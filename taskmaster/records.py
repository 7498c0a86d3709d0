"""Writes a gate run to the database: the lock, the snapshot, the blockers, the verdict.

Every write is its own short transaction and happens *before* the step it protects
(snapshot before cancel), so a gate killed at any point leaves what a restore needs.
"""

from __future__ import annotations

import getpass
import os
import socket
import sys
from collections.abc import Iterable
from datetime import datetime, timezone

from django.db import IntegrityError, transaction

from taskmaster import gate
from taskmaster.cluster import Queues
from taskmaster.models import Blocker, GateRun


class DrainOpen(Exception):
    """Another drain is open; ``run`` is the one that holds the lock."""

    def __init__(self, run: GateRun) -> None:
        super().__init__(f"another drain is open: {describe_open(run)}")
        self.run = run


def describe_open(run: GateRun) -> str:
    text = (
        f"gate run #{run.pk}, opened {run.started_at:%Y-%m-%d %H:%M:%S %Z} by "
        f"{run.opened_by}, command {run.command or '?'!r}"
    )
    if gate_alive(run) is False:
        text += f" (process {run.pid} is gone: that gate was killed or crashed)"
    return text


def gate_alive(run: GateRun) -> bool | None:
    """Whether the gate process of ``run`` still runs; None when it ran on another host."""
    if run.host != socket.gethostname() or not run.pid:
        return None
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def ci_job() -> str:
    """The CI job running this gate, when the environment says so."""
    env = os.environ
    if env.get("GITHUB_ACTIONS"):
        repository = f"{env.get('GITHUB_SERVER_URL', '')}/{env.get('GITHUB_REPOSITORY', '')}"
        return f"{repository}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"
    for key in ("CI_JOB_URL", "BUILD_URL", "CIRCLE_BUILD_URL", "BUILDKITE_BUILD_URL"):
        if env.get(key):
            return env[key]
    return env.get("CI_JOB_ID", "")


def open_run(*, timeout: float, interval: float, broker: str) -> GateRun:
    """Take the drain lock by creating the open GateRun (raises DrainOpen)."""
    try:
        with transaction.atomic():
            return GateRun.objects.create(
                timeout=timeout,
                interval=interval,
                user=getpass.getuser(),
                host=socket.gethostname(),
                pid=os.getpid(),
                ci_job=ci_job()[:500],
                command=" ".join(sys.argv)[:500],
                broker=broker[:500],
            )
    except IntegrityError:
        holder = GateRun.objects.open().first()
        if holder is None:  # closed between our insert and this read: a real race, say so
            raise
        raise DrainOpen(holder) from None


def save_snapshot(run: GateRun, snapshot: Queues) -> None:
    run.snapshot = snapshot
    run.save(update_fields=["snapshot"])


def record_blockers(run: GateRun, blockers: Iterable[gate.Blocker], *, at: datetime) -> None:
    """Keep every blocker seen, with the longest runtime it reached."""
    for b in blockers:
        row, created = Blocker.objects.get_or_create(
            run=run,
            task_id=b.id,
            worker=b.worker,
            state=b.state,
            defaults={
                "name": b.name,
                "classification": b.classification,
                "reason": b.reason[:500],
                "runtime_seconds": b.runtime_seconds,
                "first_seen": at,
                "last_seen": at,
            },
        )
        if not created:
            row.last_seen = at
            if b.runtime_seconds is not None:
                row.runtime_seconds = max(row.runtime_seconds or 0, b.runtime_seconds)
            row.save(update_fields=["last_seen", "runtime_seconds"])


def close_run(
    run: GateRun,
    *,
    verdict: gate.Verdict,
    final_blockers: Iterable[gate.Blocker],
    restore_problems: list[str] | None,
    report: dict[str, object],
) -> None:
    """Write the verdict. The lock is released unless consumers may still be cancelled.

    ``restore_problems`` is None when no restore was due (a clear verdict), empty when
    the restore was verified, and lists what is missing otherwise: the drain then stays
    open, so the next gate says how to recover instead of recording a drained fleet.
    """
    now = datetime.now(timezone.utc)
    with transaction.atomic():
        for b in final_blockers:
            run.blockers.filter(task_id=b.id, worker=b.worker, state=b.state).update(
                at_verdict=True
            )
        run.verdict = str(verdict)
        run.finished_at = now
        run.report = report
        if restore_problems is not None:
            run.restore_problems = restore_problems
            run.restored_at = None if restore_problems else now
        run.is_open = bool(restore_problems)
        run.save()


def mark_restored(run: GateRun, problems: list[str]) -> None:
    """After ``resume_consumers``: close the drain if everything is back."""
    now = datetime.now(timezone.utc)
    run.restore_problems = problems
    if not problems:
        run.restored_at = now
        run.is_open = False
        if not run.verdict:  # the gate was killed before its verdict
            run.verdict = str(gate.Verdict.INTERRUPTED)
            run.finished_at = now
    run.save()
