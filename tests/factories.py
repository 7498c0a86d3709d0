"""Rows for the admin and policy tests: blockers of gate runs, as a gate records them."""

from __future__ import annotations

from datetime import timedelta

from taskmaster.models import Blocker, GateRun


def blocker(
    run: GateRun,
    name: str,
    task_id: str,
    *,
    runtime: float | None = 10.0,
    at_verdict: bool = True,
    worker: str = "w1@host",
) -> Blocker:
    """A running early-ack task seen blocking ``run`` (still blocking at its verdict)."""
    return Blocker.objects.create(
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
