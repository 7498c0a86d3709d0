"""System checks of the Celery app and its tasks: it imports (``taskmaster.E001``, ``E006``),
and no task blocks deploys unnoticed (``W001``, ``E010``, ``W002``).

``./manage.py check --fail-level WARNING`` in CI fails when a new blocking task is merged;
``ACCEPTED_BLOCKING_TASKS`` accepts a known offender so the check stays useful. With the
database (``check --database default``), W001 says which tasks did block deploys, and names
those first. Broker settings that trap tasks are ``broker.py``'s (W003 to W005).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import router
from django.db.models import Count, Max

from taskmaster.checks.settings import check_settings
from taskmaster.conf import APP_HINT, app_settings, find_celery_app
from taskmaster.gate.registry import Classification, Registry, RegistryNotReady, build_registry
from taskmaster.models import RecordedBlocker


def app_and_registry() -> tuple[Any, Registry | None, list[CheckMessage]]:
    """The Celery app and its registry, or the error that says why they cannot be had."""
    try:
        app = find_celery_app()
    except LookupError as exc:
        error = Error(
            f"Cannot find the Celery app; {exc}.", hint=f"{APP_HINT}.", id="taskmaster.E001"
        )
        return None, None, [error]
    try:
        return app, build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT)), []
    except RegistryNotReady:
        return app, None, []  # called by Celery's Django fixup while it imports the tasks
    except Exception as exc:  # a task module that fails to import
        error = Error(f"Cannot load the tasks of the Celery app: {exc!r}.", id="taskmaster.E006")
        return app, None, [error]


def blocked_deploys(
    names: list[str], databases: Sequence[str] | None
) -> dict[str, tuple[int, datetime]] | None:
    """Per task name: the deploys it blocked and when the last one started; None when the
    check may not read the database (Django passes ``databases`` for ``check --database``
    and ``migrate``) or cannot (not migrated yet)."""
    database = router.db_for_read(RecordedBlocker)
    if not databases or database not in databases:
        return None
    try:
        rows = (
            RecordedBlocker.objects.using(database)
            .that_blocked_a_deploy()
            .filter(name__in=names)
            .order_by()
            .values("name")
            .annotate(runs=Count("run", distinct=True), last=Max("run__started_at"))
        )
        return {row["name"]: (row["runs"], row["last"]) for row in rows}
    except Exception:  # not migrated, unreachable, or refused (Django 6.1 checks every
        return None  # database by default, Celery's worker runs the checks as it starts)


def _blocking(name: str, limit: float, history: dict[str, tuple[int, datetime]] | None) -> str:
    why = (
        f"it is acknowledged when it starts and has no hard time limit of {limit:g} s or less, "
        "so a deploy that stops its worker loses it"
    )
    if history is None:
        return f"Task {name!r} is blocking: {why}."
    if name not in history:
        return f"Task {name!r} could block a deploy (it has not blocked one yet): {why}."
    runs, last = history[name]
    deploys = f"{runs} deploy{'s' if runs != 1 else ''}"
    return f"Task {name!r} blocked {deploys}, the last on {last:%Y-%m-%d}: {why}."


@register("taskmaster")
def check_tasks(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Any]:
    if check_settings():
        return []  # the settings errors say what to fix first
    _, registry, errors = app_and_registry()
    if registry is None:
        return errors
    accepted = set(app_settings.ACCEPTED_BLOCKING_TASKS)
    as_errors = app_settings.BLOCKING_TASKS_ARE_ERRORS
    level: Callable[..., CheckMessage] = Error if as_errors else Warning
    limit = app_settings.SHORT_TASK_LIMIT
    blocking = [
        name
        for name, info in registry.items()
        if info.classification is Classification.BLOCKING and name not in accepted
    ]
    history = blocked_deploys(blocking, kwargs.get("databases"))
    # The tasks that did block deploys first, the worst first: those are the ones to fix.
    blocking.sort(key=lambda name: (-(history or {}).get(name, (0,))[0], name))
    messages: list[CheckMessage] = [
        level(
            _blocking(name, limit, history),
            hint=(
                "Fix it one of three ways: make it idempotent and set acks_late=True (the "
                "broker delivers it again if its worker stops); or give it a hard "
                f"time_limit of at most {limit:g} s (the gate waits for it to end); or, if it "
                "must stay as it is, accept it in TASKMASTER['ACCEPTED_BLOCKING_TASKS']."
            ),
            obj=name,
            id="taskmaster.E010" if as_errors else "taskmaster.W001",
        )
        for name in blocking
    ]
    messages += [
        Warning(
            f"{name!r} is in TASKMASTER['ACCEPTED_BLOCKING_TASKS'] but is "
            f"{'not registered' if name not in registry else registry[name].classification}.",
            hint="Remove it from the list so a future blocking task of that name is caught.",
            id="taskmaster.W002",
        )
        for name in sorted(accepted)
        if name not in registry or registry[name].classification is not Classification.BLOCKING
    ]
    return messages
