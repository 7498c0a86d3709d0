"""What Taskmaster remembers: gate runs (history, lock, recovery data) and task policies."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Verdict(models.TextChoices):
    CLEAR = "clear", "clear"
    BLOCKED = "blocked", "blocked"
    INTERRUPTED = "interrupted", "interrupted"
    ERROR = "error", "error"


class GateRunQuerySet(models.QuerySet["GateRun"]):
    def open(self) -> GateRunQuerySet:
        """Drains whose consumers may still be cancelled and not yet restored."""
        return self.filter(is_open=True)

    def for_recovery(self) -> GateRun | None:
        """The drain ``resume_consumers`` restores: the open one, else the latest."""
        return self.open().first() or self.order_by("-started_at", "-pk").first()


class GateRun(models.Model):
    """One run of ``prepare_deploy``.

    Written before the first cancel, so that whatever happens to the gate process, the
    snapshot of every worker's consumers is on record for ``resume_consumers``. While
    ``is_open`` is true no other drain may start: the database enforces it.
    """

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    is_open = models.BooleanField(default=True)
    timeout = models.FloatField()
    interval = models.FloatField()
    user = models.CharField(max_length=150, blank=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    ci_job = models.CharField(max_length=500, blank=True)
    command = models.CharField(max_length=500, blank=True)
    broker = models.CharField(max_length=500, blank=True)  # password masked
    # hostname -> the full declarations of the queues it consumed before the drain.
    snapshot = models.JSONField(default=dict)
    restored_at = models.DateTimeField(null=True, blank=True)
    # Sentences saying what could not be restored (exit 5); empty when all is back.
    restore_problems = models.JSONField(default=list)
    report = models.JSONField(default=dict)  # the --json report of the verdict

    objects = GateRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_open"], condition=Q(is_open=True), name="taskmaster_one_open_drain"
            )
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


class Blocker(models.Model):
    """Something that blocked a gate run at some poll (kept for the task history)."""

    run = models.ForeignKey(GateRun, on_delete=models.CASCADE, related_name="blockers")
    task_id = models.CharField(max_length=255)  # the hostname for a worker blocker
    name = models.CharField(max_length=255, blank=True, db_index=True)
    worker = models.CharField(max_length=255)
    state = models.CharField(max_length=16)
    classification = models.CharField(max_length=16, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    runtime_seconds = models.FloatField(null=True, blank=True)  # the longest seen
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    at_verdict = models.BooleanField(default=False)  # still blocking when the run ended

    class Meta:
        ordering = ["run", "first_seen", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "task_id", "worker", "state"], name="taskmaster_blocker_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name or self.worker} ({self.state})"


class TaskPolicy(models.Model):
    """A registered task as the acks_late registry classifies it, with a person's notes."""

    class Classification(models.TextChoices):
        INTERRUPTIBLE = "interruptible", "interruptible"
        SHORT = "short", "short"
        BLOCKING = "blocking", "blocking"

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

    class Meta:
        ordering = ["name"]
        verbose_name = "task policy"
        verbose_name_plural = "task policies"

    def __str__(self) -> str:
        return self.name
