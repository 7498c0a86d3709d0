"""System checks: wrong settings (``taskmaster.E00x``) and blocking tasks (``taskmaster.W001``).

``./manage.py check --fail-level WARNING`` in CI fails when a new blocking task is merged;
``ACCEPTED_BLOCKING_TASKS`` accepts a known offender so the check stays useful.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from taskmaster.conf import DEFAULTS, app_settings
from taskmaster.registry import Classification, RegistryNotReady, build_registry

SECONDS = ("TIMEOUT", "INTERVAL", "SHORT_TASK_LIMIT", "REPLY_TIMEOUT")


@register("taskmaster")
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Error]:
    user = getattr(settings, "TASKMASTER", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [Error("TASKMASTER must be a dict.", id="taskmaster.E002")]
    errors = [
        Error(
            f"TASKMASTER[{key!r}] is not a Taskmaster setting.",
            hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
            id="taskmaster.E002",
        )
        for key in sorted(set(user) - set(DEFAULTS))
    ]
    for key in SECONDS:
        value = user.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, Real) or not value > 0:
            errors.append(
                Error(
                    f"TASKMASTER[{key!r}] must be a number of seconds above 0, not {value!r}.",
                    id="taskmaster.E003",
                )
            )
    if not errors and app_settings.INTERVAL > app_settings.TIMEOUT:
        errors.append(
            Error(
                "TASKMASTER['INTERVAL'] is longer than TASKMASTER['TIMEOUT']: the gate would "
                "poll once.",
                id="taskmaster.E004",
            )
        )
    accepted = user.get("ACCEPTED_BLOCKING_TASKS", [])
    if isinstance(accepted, str) or not all(isinstance(n, str) for n in accepted):
        errors.append(
            Error(
                "TASKMASTER['ACCEPTED_BLOCKING_TASKS'] must be a list of task names.",
                id="taskmaster.E005",
            )
        )
    return errors


@register("taskmaster")
def check_tasks(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Any]:
    if check_settings():
        return []  # the settings errors say what to fix first
    try:
        app = app_settings.celery_app()
    except ImportError as exc:
        return [
            Error(
                f"Cannot import the Celery app {app_settings.CELERY_APP!r}: {exc}.",
                hint="Set TASKMASTER['CELERY_APP'] to the dotted path of your Celery app.",
                id="taskmaster.E001",
            )
        ]
    try:
        registry = build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT))
    except RegistryNotReady:
        return []  # called by Celery's Django fixup while it imports the tasks: checked after
    except Exception as exc:  # a task module that fails to import
        return [Error(f"Cannot load the tasks of the Celery app: {exc!r}.", id="taskmaster.E006")]
    accepted = set(app_settings.ACCEPTED_BLOCKING_TASKS)
    as_errors = app_settings.BLOCKING_TASKS_ARE_ERRORS
    level: type[CheckMessage] = Error if as_errors else Warning
    limit = app_settings.SHORT_TASK_LIMIT
    messages: list[CheckMessage] = [
        level(
            f"Task {name!r} is blocking: it is acknowledged when it starts and has no hard "
            f"time limit of {limit:g} s or less, so a deploy that stops its worker loses it.",
            hint=(
                "Make it idempotent and set acks_late=True, or bound it with "
                f"time_limit<={limit:g}, or accept it in TASKMASTER['ACCEPTED_BLOCKING_TASKS']."
            ),
            obj=name,
            id="taskmaster.E010" if as_errors else "taskmaster.W001",
        )
        for name, info in registry.items()
        if info.classification is Classification.BLOCKING and name not in accepted
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
