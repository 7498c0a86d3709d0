"""Template filters for Taskmaster's pages: moments read as the command says them."""

from __future__ import annotations

from datetime import datetime

from django import template

from taskmaster.humanize import clock as _clock

register = template.Library()


@register.filter
def clock(moment: datetime | float | None) -> str:
    """``{{ run.started_at|clock }}``: ``23:57:10 UTC``, in the project's time zone."""
    return _clock(moment) if moment is not None else "-"
