"""What the admin pages share: the change list's filters and default ordering, how dates
read, and the read-only mixin for the pages only the gate writes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import formats, timezone

from taskmaster.gate.registry import Classification
from taskmaster.models import TaskPolicyQuerySet


class ReadOnlyAdmin:
    """For a ModelAdmin whose rows only the gate writes: history and live state, never edited."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def when(moment: datetime | None) -> str:
    """A moment as the admin shows dates (its format, the current time zone)."""
    return formats.localize(timezone.localtime(moment)) if moment else "-"


def day(moment: datetime | None) -> str:
    """A moment's date as the admin shows dates (its short format, the current time zone)."""
    return formats.date_format(timezone.localtime(moment), "SHORT_DATE_FORMAT") if moment else "-"


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
            (Classification.BLOCKING, "blocking"),
            (Classification.SHORT, "short"),
            (Classification.INTERRUPTIBLE, "interruptible"),
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


class DeployHistoryFilter(admin.SimpleListFilter):
    """Tasks that did block a deploy, apart from those that only could: fix the first first."""

    title = "at the deploy gate"
    parameter_name = "blocked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "blocked a deploy"), ("no", "could block one (never has)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # deploys_blocked is the admin queryset's annotation (with_blocker_stats).
        if self.value() == "yes":
            return queryset.filter(deploys_blocked__gt=0)
        if self.value() == "no":
            return queryset.filter(deploys_blocked=0)
        return queryset


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


class WorstOffendersFirst(ChangeList):
    """The tasks that blocked the most deploys lately come first.

    ``ModelAdmin.ordering`` cannot say so (the admin checks that it names model fields,
    and these are annotations), and ``get_ordering()`` alone would leave the column
    headers showing the model's ordering by name; the default ordering of the change
    list drives both the query and the headers' sort arrows.
    """

    def _get_default_ordering(self) -> list[str]:
        return ["-deploys_blocked_recently", "-deploys_blocked", "name"]
