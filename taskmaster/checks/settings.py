"""System checks of the ``TASKMASTER`` settings (``taskmaster.E002`` to ``E005``, ``E007`` to
``E009``), and the same checks as one error for the commands, which refuse to start on them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, register

from taskmaster.conf import DEFAULTS, app_settings, is_seconds
from taskmaster.exits import ConfigurationError

SECONDS = ("TIMEOUT", "INTERVAL", "HOLD", "SHORT_TASK_LIMIT", "REPLY_TIMEOUT")
SWITCHES = ("SHOW_TASK_ARGS", "BLOCKING_TASKS_ARE_ERRORS")


@register("taskmaster")
def check_settings(app_configs: Sequence[AppConfig] | None = None, **kwargs: Any) -> list[Error]:
    user = getattr(settings, "TASKMASTER", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return [
            Error(
                f"TASKMASTER must be a dict, not a {type(user).__name__}.",
                hint='For example TASKMASTER = {"TIMEOUT": 900}.',
                id="taskmaster.E008",
            )
        ]
    errors = [
        Error(
            f"TASKMASTER[{key!r}] is not a Taskmaster setting.",
            hint=f"Known settings: {', '.join(sorted(DEFAULTS))}.",
            id="taskmaster.E002",
        )
        for key in sorted(set(user) - set(DEFAULTS))
    ]
    bad_seconds = [key for key in SECONDS if not is_seconds(user.get(key, DEFAULTS[key]))]
    errors += [
        Error(
            f"TASKMASTER[{key!r}] must be a number of seconds above 0, not {user.get(key)!r}.",
            id="taskmaster.E003",
        )
        for key in bad_seconds
    ]
    # Only comparable once both are numbers; an unrelated mistake must not hide this one.
    if not {"INTERVAL", "TIMEOUT"} & set(bad_seconds) and (
        app_settings.INTERVAL > app_settings.TIMEOUT
    ):
        errors.append(
            Error(
                "TASKMASTER['INTERVAL'] is longer than TASKMASTER['TIMEOUT']: the gate would "
                "poll once.",
                id="taskmaster.E004",
            )
        )
    accepted = user.get("ACCEPTED_BLOCKING_TASKS", [])
    if not isinstance(accepted, (list, tuple, set, frozenset)) or not all(
        isinstance(n, str) for n in accepted
    ):
        errors.append(
            Error(
                "TASKMASTER['ACCEPTED_BLOCKING_TASKS'] must be a list of task names.",
                id="taskmaster.E005",
            )
        )
    # bool("False") is True: a switch read from an environment variable would flip silently.
    errors += [
        Error(
            f"TASKMASTER[{key!r}] must be True or False, not {user[key]!r}.",
            id="taskmaster.E007",
        )
        for key in SWITCHES
        if key in user and not isinstance(user[key], bool)
    ]
    management = user.get("RABBITMQ_MANAGEMENT_URL")
    if management is not None and not (
        isinstance(management, str) and urlsplit(management).scheme in ("http", "https")
    ):
        errors.append(
            Error(
                "TASKMASTER['RABBITMQ_MANAGEMENT_URL'] must be the http:// or https:// URL of "
                "RabbitMQ's management API, or None.",
                hint="For example 'http://user:password@rabbitmq:15672'.",
                id="taskmaster.E009",
            )
        )
    return errors


def settings_usable() -> None:
    """The settings this module's checks call wrong, as one configuration error (exit 2)."""
    problems = [str(e.msg) for e in check_settings()]
    if problems:
        raise ConfigurationError("invalid TASKMASTER settings: " + " ".join(problems))
