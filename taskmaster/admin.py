"""The admin: the non-interruptible tasks page (which tasks to fix first) and gate run history.

Everything here is history or the registry's verdict on the code, so it is read-only;
the one thing a person writes is a task's ``notes`` (owner, ticket, plan to fix).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from taskmaster.models import (
    RECENT_WINDOW,
    Blocker,
    GateRun,
    NonInterruptibleTask,
    TaskPolicy,
    TaskPolicyQuerySet,
)

RECENT_BLOCKERS = 20  # rows in a task's blocker table: enough to see a pattern


def human_duration(seconds: float | None) -> str:
    """``42 s``, ``5 min 3 s``, ``2 h 5 min``: a runtime a person reads at a glance."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s" if whole or not seconds else f"{seconds:.1f} s"


def when(moment: Any) -> str:
    return formats.localize(timezone.localtime(moment)) if moment else "-"


class ClassificationFilter(admin.SimpleListFilter):
    """Short and blocking tasks unless the user asks for others.

    Django's own "All" entry means "no parameter", which here is the default view, so it
    is replaced by an explicit ``all`` choice.
    """

    title = "classification"
    parameter_name = "classification"
    default = "non-interruptible"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            (self.default, "non-interruptible (short and blocking)"),
            (TaskPolicy.Classification.BLOCKING, "blocking"),
            (TaskPolicy.Classification.SHORT, "short"),
            (TaskPolicy.Classification.INTERRUPTIBLE, "interruptible"),
            ("all", "all"),
        ]

    def value(self) -> str:
        return str(super().value() or self.default)

    def choices(self, changelist: ChangeList) -> Iterator[Any]:
        choices = super().choices(changelist)
        next(choices)  # Django's "All": the same as the default here
        yield from choices

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == "all":
            return queryset
        if value == self.default:
            return cast(TaskPolicyQuerySet, queryset).non_interruptible()
        return queryset.filter(classification=value)


class RetiredFilter(admin.SimpleListFilter):
    title = "registration"
    parameter_name = "retired"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "registered"), ("yes", "retired (no longer registered)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        policies = cast(TaskPolicyQuerySet, queryset)
        if self.value() == "no":
            return policies.registered()
        if self.value() == "yes":
            return policies.retired()
        return queryset


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
        "classification",
        "acks_late",
        "reject_on_worker_lost",
        "time_limit",
        "soft_time_limit",
        "queue",
        "first_seen",
        "last_seen",
        "retired_at",
        "deploys_blocked_recently",
        "deploys_blocked",
        "longest_runtime",
        "last_blocked",
        "recent_blockers",
    )
    fields = (*readonly_fields, "notes")  # notes is the only field a person writes

    def get_queryset(self, request: HttpRequest) -> TaskPolicyQuerySet:
        return NonInterruptibleTask.objects.with_blocker_stats()

    def get_ordering(self, request: HttpRequest) -> tuple[str, ...]:
        # Worst recent offenders first. Not `ordering`: the admin checks that it names
        # model fields, and these are annotations.
        return ("-deploys_blocked_recently", "-deploys_blocked", "name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # rows come from the Celery app's registry (sync_task_registry)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a retired task keeps its row: its history still counts

    @admin.display(description="time limit", ordering="time_limit")
    def time_limit_display(self, obj: TaskPolicy) -> str:
        return human_duration(obj.time_limit) if obj.time_limit else "none"

    @admin.display(
        description=f"deploys blocked ({RECENT_WINDOW.days} days)",
        ordering="deploys_blocked_recently",
    )
    def deploys_blocked_recently(self, obj: Any) -> int:
        return int(obj.deploys_blocked_recently)

    @admin.display(description="deploys blocked (all time)", ordering="deploys_blocked")
    def deploys_blocked(self, obj: Any) -> int:
        return int(obj.deploys_blocked)

    @admin.display(description="longest runtime seen", ordering="longest_runtime_seconds")
    def longest_runtime(self, obj: Any) -> str:
        return human_duration(obj.longest_runtime_seconds)

    @admin.display(description="last blocked", ordering="last_blocked_at")
    def last_blocked(self, obj: Any) -> Any:
        return obj.last_blocked_at

    @admin.display(description="notes")
    def notes_excerpt(self, obj: TaskPolicy) -> str:
        return Truncator(obj.notes).chars(80)

    @admin.display(description="recent blockers")
    def recent_blockers(self, obj: TaskPolicy) -> SafeString | str:
        rows = (Blocker.objects.of_task(obj.name).select_related("run").most_recent_first())[
            :RECENT_BLOCKERS
        ]
        if not rows:
            return "Not seen blocking a gate run."
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
