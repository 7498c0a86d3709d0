"""The admin: the non-interruptible tasks page (which tasks to fix first) and gate run history.

Everything here is history or the registry's verdict on the code, so it is read-only;
the one thing a person writes is a task's ``notes`` (owner, ticket, plan to fix).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from taskmaster.changelist import (
    ClassificationFilter,
    RetiredFilter,
    WorstOffendersFirst,
    human_duration,
    when,
)
from taskmaster.models import (
    RECENT_WINDOW,
    Blocker,
    GateRun,
    NonInterruptibleTask,
    TaskPolicy,
    TaskPolicyQuerySet,
)
from taskmaster.policy import REGISTRY_FIELDS

RECENT_BLOCKERS = 20  # rows in a task's blocker table: enough to see a pattern


@admin.register(NonInterruptibleTask)
class NonInterruptibleTaskAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "classification",
        "time_limit_display",
        "deploys_blocked_recently",
        "deploys_blocked",
        "longest_runtime",
        "last_blocked",
        "notes_excerpt",
    )
    list_filter = (ClassificationFilter, RetiredFilter)
    search_fields = ("name",)
    readonly_fields = (
        "name",
        *REGISTRY_FIELDS,  # they come from code: the registry owns them
        "first_seen",
        "last_seen",
        "retired_at",
        "deploys_blocked_recently",
        "deploys_blocked",
        "longest_runtime",
        "last_blocked",
        "recent_blockers",
    )
    fieldsets = (
        (
            "What the registry says",
            {
                "fields": (
                    "name",
                    "classification",
                    ("acks_late", "reject_on_worker_lost"),
                    ("time_limit", "soft_time_limit"),
                    "queue",
                    ("first_seen", "last_seen", "retired_at"),
                )
            },
        ),
        (
            "At the deploy gate",
            {
                "fields": (
                    ("deploys_blocked_recently", "deploys_blocked"),
                    ("longest_runtime", "last_blocked"),
                    "recent_blockers",
                )
            },
        ),
        (None, {"fields": ("notes",)}),  # the only field a person writes
    )

    def get_queryset(self, request: HttpRequest) -> TaskPolicyQuerySet:
        return NonInterruptibleTask.objects.with_blocker_stats()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WorstOffendersFirst

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from the Celery app's registry (sync_task_registry)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a retired task keeps its row: its history still counts

    @admin.display(description="time limit", ordering="time_limit")
    def time_limit_display(self, obj: TaskPolicy) -> str:
        return human_duration(obj.time_limit) if obj.time_limit else "none"

    @admin.display(
        description=f"deploys blocked, {RECENT_WINDOW.days} d", ordering="deploys_blocked_recently"
    )
    def deploys_blocked_recently(self, obj: Any) -> int:
        return int(obj.deploys_blocked_recently)

    # Beside "deploys blocked, 30 d", "all time" reads as its other half: a narrow table.
    @admin.display(description="all time", ordering="deploys_blocked")
    def deploys_blocked(self, obj: Any) -> int:
        return int(obj.deploys_blocked)

    @admin.display(description="longest run seen", ordering="longest_runtime_seconds")
    def longest_runtime(self, obj: Any) -> str:
        return human_duration(obj.longest_runtime_seconds)

    @admin.display(description="last blocked", ordering="last_blocked_at")
    def last_blocked(self, obj: Any) -> str:
        # Formatted here: the change page shows a method's value as str(), unlocalized.
        return when(obj.last_blocked_at)

    @admin.display(description="notes")
    def notes_excerpt(self, obj: TaskPolicy) -> str:
        return Truncator(obj.notes).chars(50)

    @admin.display(description="recent blockers")
    def recent_blockers(self, obj: TaskPolicy) -> SafeString | str:
        blockers = Blocker.objects.of_task(obj.name).select_related("run").most_recent_first()
        rows = blockers[:RECENT_BLOCKERS]
        if not rows:
            return "Never seen blocking at a gate run."
        body = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{} to {}</td></tr>",
            (
                (
                    reverse(f"{self.admin_site.name}:taskmaster_gaterun_change", args=[b.run_id]),
                    f"#{b.run_id}, {when(b.run.started_at)}",
                    b.run.verdict or "open",
                    "yes" if b.at_verdict else "no",
                    b.task_id,
                    b.worker,
                    b.state,
                    human_duration(b.runtime_seconds),
                    when(b.first_seen),
                    when(b.last_seen),
                )
                for b in rows
            ),
        )
        return format_html(
            "<table class='taskmaster-blockers'><thead><tr><th>gate run</th><th>verdict</th>"
            "<th>still blocking at the verdict</th><th>task id</th><th>worker</th>"
            "<th>state</th><th>runtime</th><th>seen</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )


class BlockerInline(admin.TabularInline):
    model = Blocker
    fields = (
        "name",
        "task_id",
        "worker",
        "state",
        "classification",
        "runtime_seconds",
        "first_seen",
        "last_seen",
        "at_verdict",
        "reason",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(GateRun)
class GateRunAdmin(admin.ModelAdmin):
    """History: what each gate saw and decided. Read-only: it is the deploy's audit trail."""

    list_display = (
        "started_at",
        "verdict",
        "duration",
        "opened_by",
        "workers_drained",
        "blocker_count",
    )
    list_filter = ("verdict",)
    date_hierarchy = "started_at"
    inlines = (BlockerInline,)
    fields = (
        "verdict",
        "started_at",
        "finished_at",
        "duration",
        "opened_by",
        "command",
        "broker",
        "timeout",
        "interval",
        "workers_drained",
        "snapshot",
        "is_open",
        "restored_at",
        "restore_problems",
        "report",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[GateRun]:
        return super().get_queryset(request).annotate(blocker_count=Count("blockers"))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration")
    def duration(self, obj: GateRun) -> str:
        return human_duration(obj.duration_seconds) if obj.finished_at else "still open"

    @admin.display(description="started by")
    def opened_by(self, obj: GateRun) -> str:
        return obj.opened_by

    @admin.display(description="workers drained")
    def workers_drained(self, obj: GateRun) -> str:
        workers = sorted(obj.snapshot or {})
        return f"{len(workers)}: {', '.join(workers)}" if workers else "0"

    @admin.display(description="blockers", ordering="blocker_count")
    def blocker_count(self, obj: Any) -> int:
        return int(obj.blocker_count)
