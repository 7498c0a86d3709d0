"""The readiness page in the admin: "can we deploy now?", with its two guarded actions.

Every staff member may look; Prepare deploy and Resume consumers each need their own
permission (``taskmaster.prepare_deploy``, ``taskmaster.resume_consumers``), show a
confirmation page first, and act only on a POST with a CSRF token. A user without the
permission does not see the button, and a POST of theirs is refused (403) before anything
is done.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from taskmaster.admin import actions, launches
from taskmaster.admin.changelist import ReadOnlyAdmin
from taskmaster.conf import app_settings
from taskmaster.exits import ConfigurationError
from taskmaster.models import DeployReadiness, GateRun
from taskmaster.readiness.looks import budget, looks
from taskmaster.readiness.page import current_drain, drain_state, headline, totals, worker_rows

logger = logging.getLogger("taskmaster")

if TYPE_CHECKING:
    ModelAdmin = admin.ModelAdmin[DeployReadiness]
else:  # Django's ModelAdmin is generic for type checkers only
    ModelAdmin = admin.ModelAdmin

REFRESH_SECONDS = 3  # how often an open page asks for a new picture
PREPARE = "taskmaster.prepare_deploy"
RESUME = "taskmaster.resume_consumers"


def address(request: HttpRequest) -> str:
    """The client's address as the server saw it (behind a proxy, the proxy must set it)."""
    return str(request.META.get("REMOTE_ADDR", ""))


@admin.register(DeployReadiness)
class DeployReadinessAdmin(ReadOnlyAdmin, ModelAdmin):
    """Not a list of rows: the proxy's admin URLs serve the readiness page and its actions."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", view(self.page_view), name=f"{name}_changelist"),
            path("status/", view(self.status_view), name=f"{name}_status"),
            path("prepare/", view(self.prepare_view), name=f"{name}_prepare"),
            path("resume/", view(self.resume_view), name=f"{name}_resume"),
        ]

    # Any active staff member may look (admin_view already requires one).
    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    # -- the page ------------------------------------------------------------------------

    def url(self, action: str) -> str:
        name = f"{self.opts.app_label}_{self.opts.model_name}_{action}"
        return reverse(f"{self.admin_site.name}:{name}")

    def picture(self, request: HttpRequest) -> dict[str, Any]:
        """What the page shows now: one look at the workers, the drain, the buttons."""
        wait = budget()
        seen = looks.latest(budget=wait)
        now = timezone.now()
        drain = current_drain(now)
        fleet = GateRun.objects.that_drained_workers().first()
        look = seen.look
        open_run = GateRun.objects.open().first()
        latest = GateRun.objects.defer("report", "snapshot").first()
        user = request.user
        return {
            "headline": headline(
                seen,
                drain=drain,
                fleet=sorted(fleet.snapshot) if fleet else [],
                now=time.time(),
                budget=wait,
            ),
            "look": look,
            "workers": worker_rows(look, seen.missing, with_args=app_settings.SHOW_TASK_ARGS)
            if look is not None
            else [],
            "totals": [f"{n:,} {kind}" for kind, n in totals(look.outcome)] if look else [],
            "drain": drain,
            "drain_detail": open_run.describe_open() if open_run else "",
            "latest": latest,
            "launches": launches.unrecorded(),
            "can_prepare": user.has_perm(PREPARE) and actions.refusal(now) is None,
            "can_resume": user.has_perm(RESUME) and drain is not None,
            "prepare_url": self.url("prepare"),
            "resume_url": self.url("resume"),
            "status_url": self.url("status"),
            "refresh_seconds": REFRESH_SECONDS,
            "show_args": app_settings.SHOW_TASK_ARGS,
        }

    def context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": title,
            "page_url": self.url("changelist"),
            **extra,
        }

    def page_view(self, request: HttpRequest) -> HttpResponse:
        context = self.context(request, "Deploy readiness", **self.picture(request))
        return TemplateResponse(request, "admin/taskmaster/readiness.html", context)

    def status_view(self, request: HttpRequest) -> HttpResponse:
        """The part of the page that refreshes itself (the page's script swaps it in)."""
        return TemplateResponse(
            request, "admin/taskmaster/readiness_status.html", self.picture(request)
        )

    # -- the guarded actions ---------------------------------------------------------------

    @staticmethod
    def require(request: HttpRequest, permission: str) -> None:
        if not request.user.has_perm(permission):
            logger.warning(
                "admin: %s (from %s) was refused %s %s: no %s permission",
                request.user.get_username(),
                address(request),
                request.method,
                request.path,
                permission,
            )
            raise PermissionDenied

    def prepare_view(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        self.require(request, PREPARE)
        refusal = actions.refusal(timezone.now())
        if request.method == "GET":
            context = self.context(
                request,
                "Prepare deploy",
                action="prepare",
                refusal=refusal,
                timeout=app_settings.TIMEOUT,
                hold=app_settings.HOLD,
                **self.picture(request),
            )
            return TemplateResponse(request, "admin/taskmaster/readiness_confirm.html", context)
        if refusal is not None:
            messages.error(request, refusal)
            return HttpResponseRedirect(self.url("changelist"))
        try:
            started = launches.launch_gate(request.user.get_username(), address(request))
        except (ConfigurationError, OSError) as exc:
            logger.exception("admin: the gate could not be started")
            messages.error(request, f"The gate could not be started: {exc}")
        else:
            messages.success(
                request,
                f"Gate started (pid {started.pid}): this page follows it. It drains every worker, "
                "then clears the deploy, or restores the consumers at its deadline.",
            )
        return HttpResponseRedirect(self.url("changelist"))

    def resume_view(self, request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        self.require(request, RESUME)
        now = timezone.now()
        if request.method == "GET":
            runs = [
                (run, drain_state(run, now), launches.own_gate(run) is not None)
                for run in GateRun.objects.to_resume(now)
            ]
            context = self.context(request, "Resume consumers", action="resume", runs=runs)
            return TemplateResponse(request, "admin/taskmaster/readiness_confirm.html", context)
        result = actions.resume(request.user.get_username(), address(request), now=now)
        self.tell(request, result)
        return HttpResponseRedirect(self.url("changelist"))

    def tell(self, request: HttpRequest, result: actions.Resumption) -> None:
        """One message per worker (verified or not, and why), and an entry in each run's
        history (who, when, from where)."""
        for worker in result.workers:
            # The admin capitalizes a message's first letter: a hostname must not come first.
            if worker.verified:
                queues = ", ".join(worker.queues) or "no queues"
                messages.success(request, f"Verified: {worker.hostname} consumes {queues} again.")
            else:
                problem = worker.problem  # restore's sentences start with the worker's name
                if not problem.startswith(worker.hostname):
                    problem = f"{worker.hostname}: {problem}"
                messages.error(request, f"Not verified: {problem}")
        if result.error:
            messages.error(request, result.error)
        if not result.workers and not result.error:
            messages.info(request, " ".join(result.sentences) or "Nothing to resume.")
        for run_id in sorted({w.run_id for w in result.workers}):
            verified = all(w.verified for w in result.workers if w.run_id == run_id)
            # Logged on the GateRun (log_change takes the object's own model), so it shows
            # in the run's history in the admin.
            run = GateRun.objects.defer("report").get(pk=run_id)
            self.log_change(
                request,
                cast(DeployReadiness, run),
                f"Resumed consumers from {address(request)}: "
                + ("every worker verified" if verified else "restore incomplete"),
            )
