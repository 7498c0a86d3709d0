"""Gate run history in the admin: what each gate saw and decided, and who asked for it.

Read-only: it is the deploy's audit trail. A run's page stays small however many blockers the
run recorded (``run_page.py``): grouped by task, a page of rows at a time, and the report cut
short on the page with the whole of it a download away.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from taskmaster.admin.changelist import ReadOnlyAdmin, when
from taskmaster.admin.run_page import (
    blocker_groups,
    blocker_page,
    report_excerpt,
    snapshot_table,
    worker_blockers,
)
from taskmaster.gate.scope import Scope
from taskmaster.humanize import duration, plural, some
from taskmaster.models import GateRun, RecordedBlocker

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[GateRun]
else:  # Django's ModelAdmin is generic for type checkers only
    ModelAdmin = admin.ModelAdmin

WORKERS_NAMED = 3  # in the list: "8: w1, w2, w3 and 5 more"


@admin.register(GateRun)
class GateRunAdmin(ReadOnlyAdmin, ModelAdmin):
    list_display = (
        "number",
        "started_at",
        "verdict",
        "duration",
        "started_by",
        "workers_drained",
        "blocker_count",
    )
    list_display_links = ("number",)
    list_filter = ("verdict",)
    date_hierarchy = "started_at"
    fields = (
        "verdict",
        ("started_at", "finished_at", "duration"),
        "started_by",
        "resumed",
        "command",
        "broker",
        "drained_scope",
        ("timeout", "interval", "hold"),
        ("is_open", "lease_until", "restored_at"),
        "problems",
        "said",
        "snapshot_table",
        "report_json",
    )
    readonly_fields = (
        "verdict",
        "started_at",
        "finished_at",
        "duration",
        "started_by",
        "resumed",
        "command",
        "broker",
        "drained_scope",
        "timeout",
        "interval",
        "hold",
        "is_open",
        "lease_until",
        "restored_at",
        "problems",
        "said",
        "snapshot_table",
        "report_json",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[GateRun]:
        # A subquery, not a join: the list stays one row per run. The report (megabytes for
        # a big run) is read on the run's own page only.
        count = (
            RecordedBlocker.objects.filter(run=OuterRef("pk"))
            .order_by()
            .values("run")
            .annotate(n=Count("pk"))
            .values("n")
        )
        runs: QuerySet[GateRun] = super().get_queryset(request).defer("report")
        return runs.annotate(
            blocker_count=Coalesce(Subquery(count, output_field=IntegerField()), Value(0))
        )

    def get_urls(self) -> list[URLPattern]:
        report = self.admin_site.admin_view(self.report_view)
        name = f"{self.opts.app_label}_{self.opts.model_name}_report"
        return [path("<path:object_id>/report.json", report, name=name), *super().get_urls()]

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        return GateRun.objects.filter(pk=object_id).first() if object_id.isdigit() else None

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        run_id = unquote(object_id)
        if not run_id.isdigit():
            raise Http404
        groups, more = blocker_groups(int(run_id))
        page = blocker_page(int(run_id), request.GET.get("blockers"))
        context = {
            **(extra_context or {}),
            "blocker_groups": groups,
            "more_groups": more,
            "worker_blockers": worker_blockers(int(run_id)),
            "blockers": page,
            "blocker_pages": page.paginator.get_elided_page_range(page.number, on_each_side=2),
        }
        return super().change_view(request, object_id, form_url, context)

    def report_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The whole JSON report of a run, as the gate wrote it: a download."""
        run = self.get_object(request, unquote(object_id))
        if run is None or not self.has_view_permission(request, run):
            raise Http404
        response = JsonResponse(run.report, json_dumps_params={"indent": 2, "sort_keys": True})
        response["Content-Disposition"] = f'attachment; filename="gate-run-{run.pk}.json"'
        return response

    # -- columns and fields ---------------------------------------------------------------

    @admin.display(description="run", ordering="pk")
    def number(self, obj: GateRun) -> str:
        return f"#{obj.pk}"

    @admin.display(description="duration")
    def duration(self, obj: GateRun) -> str:
        return duration(obj.duration_seconds) if obj.finished_at else "still open"

    @admin.display(description="started by")
    def started_by(self, obj: GateRun) -> str:
        return obj.requester

    @admin.display(description="resumed by")
    def resumed(self, obj: GateRun) -> str:
        if not obj.resumed_by:
            return "-"
        where = f" from {obj.resumed_from}" if obj.resumed_from else ""
        done = f", restored {when(obj.restored_at)}" if obj.restored_at else ", not restored"
        return f"{obj.resumed_by} (admin{where}){done}"

    @admin.display(description="scope")
    def drained_scope(self, obj: GateRun) -> str:
        scope = Scope(tuple(obj.scope.get("workers", ())), tuple(obj.scope.get("queues", ())))
        return scope.describe()

    @admin.display(description="workers drained")
    def workers_drained(self, obj: GateRun) -> str:
        workers = sorted(obj.snapshot or {})
        if not workers:
            return "0"
        return f"{len(workers)}: {some(workers, WORKERS_NAMED)}"

    @admin.display(description="blockers", ordering="blocker_count")
    def blocker_count(self, obj: Any) -> int:
        return int(obj.blocker_count)

    @admin.display(description="not restored")
    def problems(self, obj: GateRun) -> SafeString | str:
        if not obj.restore_problems:
            return "-"
        items = format_html_join("", "<li>{}</li>", ((p,) for p in obj.restore_problems))
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="what the gate said")
    def said(self, obj: GateRun) -> SafeString | str:
        """The run's notes, a notification or a metrics push that failed after the verdict
        last; the latest in sight, the rest a click away."""
        notes = (obj.report or {}).get("notes") or []
        if not notes:
            return "-"
        items = format_html_join("", "<li>{}</li>", ((n,) for n in notes))
        return format_html(
            "<details class='tm-report'><summary>{} · the last: {}</summary><ol>{}</ol></details>",
            plural(len(notes), "sentence"),
            notes[-1],
            items,
        )

    @admin.display(description="snapshot (what a restore puts back)")
    def snapshot_table(self, obj: GateRun) -> SafeString | str:
        return snapshot_table(obj.snapshot or {})

    @admin.display(description="JSON report")
    def report_json(self, obj: GateRun) -> SafeString | str:
        if not obj.report:
            return "None yet: the gate writes it at its verdict."
        text, cut = report_excerpt(obj.report)
        download = reverse(f"{self.admin_site.name}:taskmaster_gaterun_report", args=[obj.pk])
        shortened = f" (shortened here: {cut:,} list items left out)" if cut else ""
        return format_html(
            "<details class='tm-report'><summary>Show the report{} · "
            "<a href='{}' download>download the whole of it</a></summary><pre>{}</pre></details>",
            shortened,
            download,
            text,
        )
