"""What Taskmaster remembers: gate runs (history, lock, recovery data) and task policies."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Count, Max, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from taskmaster.gate.registry import Classification
from taskmaster.gate.rules import Verdict

# "Deploys blocked lately" on the admin page: long enough to see a pattern, short enough
# that a task fixed last quarter drops out of the worst offenders.
RECENT_WINDOW = timedelta(days=30)


class GateRunQuerySet(models.QuerySet["GateRun"]):
    def open(self) -> GateRunQuerySet:
        """Drains whose consumers may still be cancelled and not yet restored."""
        return self.filter(is_open=True)

    def for_recovery(self) -> GateRun | None:
        """The drain ``resume_consumers`` restores: the open one, else the latest."""
        return self.open().first() or self.order_by("-started_at", "-pk").first()

    def that_drained_workers(self) -> GateRunQuerySet:
        """Runs that found workers: evidence that this database's gates have a fleet."""
        return self.exclude(snapshot={})

    def held_clear(self, now: datetime) -> GateRun | None:
        """The latest run, if it cleared and the workers' lease still holds them drained:
        a clear verdict closes its run, but until the workers restart (the deploy) or the
        hold runs out, a deploy called off needs a resume too."""
        latest = self.defer("report").first()
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

    def to_resume(self, now: datetime) -> list[GateRun]:
        """What a resume puts back: the open drains, else a clear verdict still held."""
        runs = list(self.open().defer("report").order_by("started_at", "pk"))
        if runs:
            return runs
        held = self.held_clear(now)
        return [held] if held is not None else []


class GateRun(models.Model):
    """One run of ``prepare_deploy``.

    Written before the first cancel, so that whatever happens to the gate process, the
    snapshot of every worker's consumers is on record for ``resume_consumers``. While
    ``is_open`` is true its workers are claimed (``DrainedWorker``): no other drain may
    touch them, and the database enforces it.
    """

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    is_open = models.BooleanField(default=True)
    timeout = models.FloatField()
    interval = models.FloatField()
    hold = models.FloatField(null=True, blank=True)  # seconds a clear verdict holds the drain
    # Until when the workers' drain lease runs, as last renewed: after a clear, the hold.
    lease_until = models.DateTimeField(null=True, blank=True)
    user = models.CharField(max_length=150, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    ci_job = models.CharField(max_length=500, blank=True)
    command = models.CharField(max_length=500, blank=True)
    broker = models.CharField(max_length=500, blank=True)  # password masked
    # A selective drain: {"workers": [shell patterns], "queues": [names]}; {} drains all.
    scope = models.JSONField(default=dict, blank=True)
    # Who asked for it from the admin (the Prepare deploy button), and from which address.
    requested_by = models.CharField(max_length=150, blank=True)
    requested_from = models.CharField(max_length=100, blank=True)
    # Who restored it from the admin (the Resume consumers button), and from which address.
    resumed_by = models.CharField(max_length=150, blank=True)
    resumed_from = models.CharField(max_length=100, blank=True)
    # hostname -> the full declarations of the queues it consumed before the drain.
    snapshot = models.JSONField(default=dict)
    restored_at = models.DateTimeField(null=True, blank=True)
    # Sentences saying what could not be restored (exit 5); empty when all is back.
    restore_problems = models.JSONField(default=list)
    report = models.JSONField(default=dict)  # the --json report of the verdict

    objects = GateRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        # The admin's guarded actions (readiness page): each its own permission, so a team
        # can let everyone see whether a deploy is safe and only some start or undo one.
        permissions = [
            ("prepare_deploy", "Can prepare a deploy (run the gate) from the admin"),
            ("resume_consumers", "Can resume the consumers of a drain from the admin"),
        ]

    def __str__(self) -> str:
        return f"gate run #{self.pk} ({self.verdict or 'open'})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def opened_by(self) -> str:
        who = f"{self.user or '?'}@{self.host or '?'} (pid {self.pid or '?'})"
        return f"{who}, CI job {self.ci_job}" if self.ci_job else who

    @property
    def requester(self) -> str:
        """Who started it: the admin user and address, or the command's user, host and pid."""
        if self.requested_by:
            where = f" from {self.requested_from}" if self.requested_from else ""
            return f"{self.requested_by} (admin{where})"
        return self.opened_by

    def gate_alive(self) -> bool | None:
        """Whether its gate process still runs; None when it ran on another host."""
        if self.host != socket.gethostname() or not self.pid:
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, under another user
        return True

    def describe_open(self) -> str:
        """An open drain in one sentence: who opened it, when, and whether its gate lives."""
        text = (
            f"gate run #{self.pk}, opened {self.started_at:%Y-%m-%d %H:%M:%S %Z} by "
            f"{self.opened_by}, command {self.command or '?'!r}"
        )
        if self.gate_alive() is False:
            text += f" (process {self.pid} is gone: that gate was killed or crashed)"
        if self.lease_until and self.lease_until < timezone.now():
            text += (
                f"; its lease ran out at {self.lease_until:%H:%M:%S %Z}, so the workers that "
                "run taskmaster.tasks consume again"
            )
        return text


class DeployReadiness(GateRun):
    """The admin's readiness page ("can we deploy now?"): a proxy with no rows of its own,
    so the page has its place in the admin's index and breadcrumbs like a model's."""

    class Meta:
        proxy = True
        default_permissions = ()  # any staff member may look; the actions have their own
        verbose_name = "deploy readiness"
        verbose_name_plural = "deploy readiness"


class DrainedWorker(models.Model):
    """A worker claimed by an open drain: the lock, one row per worker.

    Two gates may drain disjoint workers at once (a rolling deploy, a pod's ``preStop``);
    the unique hostname refuses the second claim on a worker.
    """

    run = models.ForeignKey(GateRun, on_delete=models.CASCADE, related_name="claims")
    hostname = models.CharField(max_length=255, unique=True)

    def __str__(self) -> str:
        return f"{self.hostname} (gate run #{self.run_id})"


class RecordedBlockerQuerySet(models.QuerySet["RecordedBlocker"]):
    def of_task(self, name: str) -> RecordedBlockerQuerySet:
        return self.filter(name=name)

    def that_blocked_a_deploy(self) -> RecordedBlockerQuerySet:
        """Still blocking when its gate run gave up: the deploy did not go ahead."""
        return self.filter(at_verdict=True, run__verdict=Verdict.BLOCKED)

    def most_recent_first(self) -> RecordedBlockerQuerySet:
        return self.order_by("-run__started_at", "-run__pk", "-last_seen", "-pk")


class RecordedBlocker(models.Model):
    """A blocker (``gate.rules.Blocker``) as a gate run recorded it, kept for the task
    history: one row per task and worker, whatever states it went through (prefetched,
    then running)."""

    run = models.ForeignKey(GateRun, on_delete=models.CASCADE, related_name="blockers")
    task_id = models.CharField(max_length=255)  # the hostname for a worker blocker
    name = models.CharField(max_length=255, blank=True, db_index=True)
    worker = models.CharField(max_length=255)
    state = models.CharField(max_length=16)  # the last one seen
    states = models.CharField(
        max_length=100, blank=True
    )  # every one seen, in order: "reserved, active"
    classification = models.CharField(max_length=16, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    runtime_seconds = models.FloatField(null=True, blank=True)  # the longest seen
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    at_verdict = models.BooleanField(default=False)  # still blocking when the run ended

    objects = RecordedBlockerQuerySet.as_manager()

    class Meta:
        ordering = ["run", "first_seen", "pk"]
        db_table = "taskmaster_blocker"  # its name before the rename: the table stays
        verbose_name = "blocker"
        constraints = [
            models.UniqueConstraint(
                fields=["run", "task_id", "worker"], name="taskmaster_blocker_once_per_task"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name or self.worker} ({self.state})"


class WorkerQuerySet(models.QuerySet["Worker"]):
    def known(self, *, now: datetime | None = None) -> WorkerQuerySet:
        """Heard lately and not found gone since: the workers a gate asks the broker about
        when they do not answer."""
        since = (now or timezone.now()) - RECENT_WINDOW
        return self.filter(last_seen__gte=since, absent_since__isnull=True)

    def roster(self) -> dict[str, set[str]]:
        """Each worker's node name and the queues it was last heard consuming."""
        return {worker.hostname: set(worker.queues) for worker in self}


class Worker(models.Model):
    """A worker node some gate heard: the fleet's roster.

    A worker that stops answering (a busy ``solo`` pool) is still known by name, so a later
    gate can ask the broker whether it is alive or gone.
    """

    hostname = models.CharField(max_length=255, unique=True)
    queues = models.JSONField(default=list)  # the task queues it consumed when last heard
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    # When the broker said its connection was gone; not asked about again until heard again.
    absent_since = models.DateTimeField(null=True, blank=True)

    objects = WorkerQuerySet.as_manager()

    class Meta:
        ordering = ["hostname"]

    def __str__(self) -> str:
        return self.hostname


def _per_task(
    blockers: RecordedBlockerQuerySet, aggregate: Any, output_field: models.Field[Any, Any]
) -> Subquery:
    """One aggregate over the RecordedBlocker rows of the outer TaskPolicy.

    Blockers are matched by task name, not by a foreign key: the history of a task
    outlives its registration (a renamed or deleted task keeps its blocked deploys).
    """
    rows = (
        blockers.filter(name=OuterRef("name"))
        .order_by()  # Blocker's default ordering would leak into the GROUP BY
        .values("name")
        .annotate(value=aggregate)
        .values("value")
    )
    return Subquery(rows, output_field=output_field)


class TaskPolicyQuerySet(models.QuerySet["TaskPolicy"]):
    def registered(self) -> TaskPolicyQuerySet:
        return self.filter(retired_at__isnull=True)

    def retired(self) -> TaskPolicyQuerySet:
        return self.filter(retired_at__isnull=False)

    def non_interruptible(self) -> TaskPolicyQuerySet:
        """Short and blocking tasks: a stop of their worker while they run loses them."""
        return self.exclude(classification=Classification.INTERRUPTIBLE)

    def with_blocker_stats(self, *, now: datetime | None = None) -> TaskPolicyQuerySet:
        """Annotate what each task cost the deploys, in the same query (no N+1).

        - ``deploys_blocked``: gate runs with verdict "blocked" in which the task was
          still blocking at the verdict; ``deploys_blocked_recently``: those started in
          the last ``RECENT_WINDOW`` (30 days);
        - ``longest_runtime_seconds``: the longest it was seen running at any gate;
        - ``last_blocked_at``: when the latest gate run it blocked started.
        """
        since = (now or timezone.now()) - RECENT_WINDOW
        blocked = RecordedBlocker.objects.that_blocked_a_deploy()
        runs = Count("run", distinct=True)
        return self.annotate(
            deploys_blocked=Coalesce(_per_task(blocked, runs, models.IntegerField()), Value(0)),
            deploys_blocked_recently=Coalesce(
                _per_task(blocked.filter(run__started_at__gte=since), runs, models.IntegerField()),
                Value(0),
            ),
            longest_runtime_seconds=_per_task(
                RecordedBlocker.objects.all(), Max("runtime_seconds"), models.FloatField()
            ),
            last_blocked_at=_per_task(blocked, Max("run__started_at"), models.DateTimeField()),
        )


class TaskPolicy(models.Model):
    """A registered task as the acks_late registry classifies it, with a person's notes."""

    name = models.CharField(max_length=255, unique=True)
    classification = models.CharField(max_length=16, choices=Classification.choices)
    acks_late = models.BooleanField()
    reject_on_worker_lost = models.BooleanField()
    time_limit = models.FloatField(null=True, blank=True)
    soft_time_limit = models.FloatField(null=True, blank=True)
    queue = models.CharField(max_length=255, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)  # no longer registered
    notes = models.TextField(blank=True, help_text="Owner, ticket link, plan to fix.")

    objects = TaskPolicyQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "task policy"
        verbose_name_plural = "task policies"

    def __str__(self) -> str:
        return self.name


class NonInterruptibleTask(TaskPolicy):
    """The admin's view of TaskPolicy: the page that polices non-interruptible tasks.

    A proxy, so the admin's index, breadcrumbs and titles say what the page is for
    without renaming the model that the registry sync writes.
    """

    class Meta:
        proxy = True
        verbose_name = "non-interruptible task"
        verbose_name_plural = "non-interruptible tasks"
