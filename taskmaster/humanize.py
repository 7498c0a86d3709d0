"""How numbers, moments and lists read, the same in every sentence Taskmaster says: the
command's lines, its notes, the admin pages, the readiness page. Pure functions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from django.utils import timezone as django_timezone


def duration(seconds: float | None) -> str:
    """``42 s``, ``5 min 3 s``, ``2 h 5 min``: a runtime a person reads at a glance."""
    if seconds is None:
        return "-"
    if 0 < seconds < 0.5:
        return f"{seconds:.1f} s"
    hours, rest = divmod(round(max(0.0, seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def clock(moment: datetime | float) -> str:
    """A moment as the time of day in the project's time zone, with the zone's name."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    local = django_timezone.localtime(moment)
    return f"{local:%H:%M:%S} {local.tzname()}"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def some(names: Sequence[str], shown: int = 5) -> str:
    """At most ``shown`` names, and how many more: a sentence stays readable for any fleet."""
    rest = len(names) - shown
    head = ", ".join(names[:shown])
    return f"{head} and {rest:,} more" if rest > 0 else head
