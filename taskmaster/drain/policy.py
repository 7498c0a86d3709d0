"""Keeps one TaskPolicy row per registered task, so the admin can police them.

The registry is what the deployer's code registers now; the rows are its memory: when a
task was first and last seen, when it stopped being registered, and the notes people
wrote about it (which a sync never touches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from taskmaster.gate.registry import Registry, TaskInfo
from taskmaster.models import TaskPolicy

# What the registry decides about a task; everything else on a row is history or notes.
REGISTRY_FIELDS = (
    "classification",
    "acks_late",
    "reject_on_worker_lost",
    "time_limit",
    "soft_time_limit",
    "queue",
)


@dataclass
class SyncResult:
    """The names each sync changed; ``unchanged`` were only seen again."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    revived: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    @property
    def registered(self) -> int:
        return len(self.created) + len(self.updated) + len(self.revived) + len(self.unchanged)

    def summary(self) -> str:
        def part(label: str, names: list[str]) -> str:
            return f"{len(names)} {label}" + (f" ({', '.join(names)})" if names else "")

        return f"{self.registered} registered task(s): " + ", ".join(
            [
                part("created", self.created),
                part("updated", self.updated),
                part("retired", self.retired),
                part("revived", self.revived),
            ]
        )


def policy_values(info: TaskInfo) -> dict[str, Any]:
    return {
        "classification": str(info.classification),
        "acks_late": info.acks_late,
        "reject_on_worker_lost": info.reject_on_worker_lost,
        "time_limit": info.time_limit,
        "soft_time_limit": info.soft_time_limit,
        "queue": info.queue or "",
    }


def sync_registry(registry: Registry, *, now: datetime | None = None) -> SyncResult:
    """Upsert a TaskPolicy per registered task; retire the rows no longer registered.

    One transaction, with the existing rows locked: two deploys syncing at once see one
    another's result instead of interleaving. ``notes`` is never written.
    """
    now = now or timezone.now()
    result = SyncResult()
    with transaction.atomic():
        rows = {row.name: row for row in TaskPolicy.objects.select_for_update()}
        new: list[TaskPolicy] = []
        changed: list[TaskPolicy] = []
        for name, info in registry.items():
            values = policy_values(info)
            row = rows.get(name)
            if row is None:
                new.append(TaskPolicy(name=name, first_seen=now, last_seen=now, **values))
                result.created.append(name)
                continue
            if row.retired_at is not None:
                row.retired_at = None
                result.revived.append(name)
            elif any(getattr(row, key) != value for key, value in values.items()):
                result.updated.append(name)
            else:
                result.unchanged.append(name)
            for key, value in values.items():
                setattr(row, key, value)
            row.last_seen = now
            changed.append(row)
        for name, row in sorted(rows.items()):
            if name not in registry and row.retired_at is None:
                row.retired_at = now  # last_seen stays: the last sync that saw it
                result.retired.append(name)
                changed.append(row)
        TaskPolicy.objects.bulk_create(new)
        TaskPolicy.objects.bulk_update(
            changed, fields=[*REGISTRY_FIELDS, "last_seen", "retired_at"], batch_size=500
        )
    return result
