"""What several tests build alike: the registry's view of a task, and blockers of gate runs
as a gate records them (for the admin and policy tests)."""

from __future__ import annotations

from datetime import timedelta

from taskmaster.gate.registry import TaskInfo, classify
from taskmaster.models import GateRun, RecordedBlocker


def task_info(name: str, *, acks_late: bool = False, time_limit: float | None = None) -> TaskInfo:
    """A task as the acks_late registry sees it, classified with the default short limit."""
    return TaskInfo(
        name=name,
        acks_late=acks_late,
        reject_on_worker_lost=False,
        time_limit=time_limit,
        soft_time_limit=None,
        queue="celery",
        classification=classify(acks_late=acks_late, time_limit=time_limit, short_limit=60),
    )


def blocker(
    run: GateRun,
    name: str,
    task_id: str,
    *,
    runtime: float | None = 10.0,
    at_verdict: bool = True,
    worker: str = "w1@host",
) -> RecordedBlocker:
    """A running early-ack task seen blocking ``run`` (still blocking at its verdict)."""
    return RecordedBlocker.objects.create(
        run=run,
        task_id=task_id,
        name=name,
        worker=worker,
        state="active",
        classification="blocking",
        runtime_seconds=runtime,
        first_seen=run.started_at,
        last_seen=run.started_at + timedelta(minutes=10),
        at_verdict=at_verdict,
    )
