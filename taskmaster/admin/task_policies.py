"""The admin: the non-interruptible tasks page (which tasks to fix first) and gate run history.

Everything here is history or the registry's verdict on the code, so it is read-only;
the one thing a person writes is a task's ``notes`` (owner, ticket, plan to fix).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

from taskmaster.admin.changelist import (
    ClassificationFilter,
    DeployHistoryFilter,
    RetiredFilter,
    WorstOffendersFirst,
    day,
    when,
)
from taskmaster.drain.policy import REGISTRY_FIELDS
from taskmaster.gate.registry import Classification
from taskmaster.humanize import duration
from taskmaster.models import (
    RECENT_WINDOW,
    NonInterruptibleTask,
    RecordedBlocker,
    TaskPolicy,
)

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[NonInterruptibleTask]
else:  # Django's ModelAdmin is generic for type checkers only
    ModelAdmin = admin.ModelAdmin

RECENT_BLOCKERS = 20  # rows in a task's blocker table: enough to see a pattern


@admin.register(NonInterruptibleTask)
class NonInterruptibleTaskAdmin(ModelAdmin):
    class Media:
        css = {"all": ("taskmaster/taskmaster.css",)}

    list_display = (
        "task_name",
        "classification",
        "time_limit_display",
        "at_the_gate",
        "deploys_blocked_recently",
        "longest_runtime",
        "last_blocked",
        "notes_excerpt",
    )
    list_filter = (ClassificationFilter, DeployHistoryFilter, RetiredFilter)
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[NonInterruptibleTask]:
        # The proxy inherits TaskPolicy's manager, whose rows are typed as TaskPolicy.
        return cast(
            "QuerySet[NonInterruptibleTask]", NonInterruptibleTask.objects.with_blocker_stats()
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return WorstOffendersFirst

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from the Celery app's registry (sync_task_registry)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a retired task keeps its row: its history still counts

    @admin.display(description="name", ordering="name")
    def task_name(self, obj: TaskPolicy) -> SafeString:
        # A line may break after each dot: "project.tasks." over "generate_report".
        parts = ((part,) for part in obj.name.split("."))
        return format_html_join(mark_safe(".<wbr>"), "{}", parts)

    @admin.display(description="time limit", ordering="time_limit")
    def time_limit_display(self, obj: TaskPolicy) -> str:
        return duration(obj.time_limit) if obj.time_limit else "none"

    @admin.display(
        description=f"blocked, {RECENT_WINDOW.days} d", ordering="deploys_blocked_recently"
    )
    def deploys_blocked_recently(self, obj: Any) -> int:
        return int(obj.deploys_blocked_recently)

    @admin.display(description="deploys blocked, all time", ordering="deploys_blocked")
    def deploys_blocked(self, obj: Any) -> int:
        return int(obj.deploys_blocked)

    # The column that tells real offenders from tasks that only could block a deploy.
    @admin.display(description="at the gate", ordering="deploys_blocked")
    def at_the_gate(self, obj: Any) -> SafeString | str:
        if obj.classification == Classification.INTERRUPTIBLE:
            return "safe to stop"
        if obj.deploys_blocked:
            count = int(obj.deploys_blocked)
            text = f"blocked {count} deploy{'s' if count != 1 else ''}"
            return format_html("<span class='tm-offender'>{}</span>", text)
        return format_html("<span class='tm-could'>{}</span>", "could block one")

    @admin.display(description="longest run seen", ordering="longest_runtime_seconds")
    def longest_runtime(self, obj: Any) -> str:
        return duration(obj.longest_runtime_seconds)

    @admin.display(description="last blocked", ordering="last_blocked_at")
    def last_blocked(self, obj: Any) -> str:
        # Formatted here: the change page shows a method's value as str(), unlocalized. The
        # date alone keeps the list narrow; the task's page has each run's time.
        return day(obj.last_blocked_at)

    @admin.display(description="notes")
    def notes_excerpt(self, obj: TaskPolicy) -> str:
        return Truncator(obj.notes).chars(40)

    @admin.display(description="recent blockers")
    def recent_blockers(self, obj: TaskPolicy) -> SafeString | str:
        # A run's report and snapshot can be megabytes: the table needs neither.
        blockers = (
            RecordedBlocker.objects.of_task(obj.name)
            .select_related("run")
            .defer("run__report", "run__snapshot")
            .most_recent_first()
        )
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
                    b.states or b.state,
                    duration(b.runtime_seconds),
                    when(b.first_seen),
                    when(b.last_seen),
                )
                for b in rows
            ),
        )
        return format_html(
            "<table class='taskmaster-blockers'><thead><tr><th>gate run</th><th>verdict</th>"
            "<th>still blocking at the verdict</th><th>task id</th><th>worker</th>"
            "<th>states seen</th><th>runtime</th><th>seen</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            body,
        )
