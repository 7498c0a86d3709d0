"""Data for 0003: one Blocker row per task (merging its per-state rows), and a claim per
worker of each open drain. Its own migration: on PostgreSQL, rows updated in the same
transaction as an ALTER TABLE would leave pending trigger events."""

from typing import Any

from django.db import migrations


def one_blocker_per_task(apps: Any, schema_editor: Any) -> None:
    """Merge the rows of a task seen in several states (one per state until now)."""
    Blocker = apps.get_model("taskmaster", "Blocker")
    order = {"scheduled": 0, "reserved": 1, "active": 2}
    groups: dict[tuple[int, str, str], list[Any]] = {}
    for row in Blocker.objects.order_by("first_seen", "pk"):
        groups.setdefault((row.run_id, row.task_id, row.worker), []).append(row)
    for rows in groups.values():
        keep, *rest = rows
        states = sorted({r.state for r in rows}, key=lambda s: order.get(s, 3))
        keep.states = ", ".join(states)
        keep.state = states[-1]
        keep.last_seen = max(r.last_seen for r in rows)
        runtimes = [r.runtime_seconds for r in rows if r.runtime_seconds is not None]
        keep.runtime_seconds = max(runtimes) if runtimes else None
        keep.at_verdict = any(r.at_verdict for r in rows)
        keep.save()
        Blocker.objects.filter(pk__in=[r.pk for r in rest]).delete()


def claim_workers_of_open_runs(apps: Any, schema_editor: Any) -> None:
    """An open drain keeps its workers: the lock is now one row per worker."""
    GateRun = apps.get_model("taskmaster", "GateRun")
    DrainedWorker = apps.get_model("taskmaster", "DrainedWorker")
    for run in GateRun.objects.filter(is_open=True):
        for hostname in run.snapshot or {}:
            DrainedWorker.objects.get_or_create(hostname=hostname, defaults={"run": run})


class Migration(migrations.Migration):
    dependencies = [("taskmaster", "0003_drain_lease_and_claims")]

    operations = [
        migrations.RunPython(one_blocker_per_task, migrations.RunPython.noop),
        migrations.RunPython(claim_workers_of_open_runs, migrations.RunPython.noop),
    ]
