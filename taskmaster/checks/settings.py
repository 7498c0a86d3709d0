"""System checks of the ``TASKMASTER`` settings (``taskmaster.E002`` to ``E005``, ``E007`` to
``E009``, ``E011`` to ``E014``), and the same checks as one error for the commands, which refuse
to start on them."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Error, register

from taskmaster.conf import DEFAULTS, METRICS_DEFAULTS, app_settings, is_seconds
from taskmaster.exits import ConfigurationError

SECONDS = (
    "TIMEOUT",
    "INTERVAL",
    "HOLD",
    "SHORT_TASK_LIMIT",
    "REPLY_TIMEOUT",
    "NOTIFICATION_TIMEOUT",
)
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
    errors += _observability_errors(user)
    return errors


VERDICTS_TOLD = ("blocked", "error", "interrupted", "clear", "restored")


def _is_url(value: object) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https")


def _observability_errors(user: dict[str, Any]) -> list[Error]:
    """METRICS, NOTIFICATIONS and SITE_URL (docs/observability.md)."""
    errors = []
    metrics = user.get("METRICS")
    if metrics is not None:
        if not isinstance(metrics, dict) or set(metrics) - set(METRICS_DEFAULTS):
            errors.append(
                Error(
                    "TASKMASTER['METRICS'] must be a dict with some of "
                    f"{', '.join(METRICS_DEFAULTS)}, or None.",
                    hint='For example {"PUSHGATEWAY": "http://pushgateway:9091"}.',
                    id="taskmaster.E011",
                )
            )
        elif not (
            metrics.get("PUSHGATEWAY") in (None, "") or _is_url(metrics["PUSHGATEWAY"])
        ) or not (
            metrics.get("TEXTFILE") in (None, "")
            or (isinstance(metrics["TEXTFILE"], str) and metrics["TEXTFILE"].endswith(".prom"))
        ):
            errors.append(
                Error(
                    "TASKMASTER['METRICS']: PUSHGATEWAY must be an http:// or https:// URL, "
                    "and TEXTFILE a path ending in .prom (node_exporter reads no other).",
                    id="taskmaster.E011",
                )
            )
        elif _wanted(metrics) and importlib.util.find_spec("prometheus_client") is None:
            errors.append(
                Error(
                    "TASKMASTER['METRICS'] is set, but prometheus-client is not installed.",
                    hint='pip install "django-taskmaster[metrics]"',
                    id="taskmaster.E012",
                )
            )
    destinations = user.get("NOTIFICATIONS", [])
    if not isinstance(destinations, (list, tuple)) or not all(
        _is_destination(d) for d in destinations
    ):
        errors.append(
            Error(
                "TASKMASTER['NOTIFICATIONS'] must be a list of dicts, each with an http:// or "
                "https:// URL, a FORMAT of 'json' or 'slack', ON: a list among "
                f"{', '.join(VERDICTS_TOLD)}, and an optional SECRET string.",
                hint='For example [{"URL": "https://hooks.slack.com/services/...", '
                '"FORMAT": "slack", "ON": ["blocked", "error"]}].',
                id="taskmaster.E013",
            )
        )
    site = user.get("SITE_URL")
    if site is not None and not _is_url(site):
        errors.append(
            Error(
                "TASKMASTER['SITE_URL'] must be the site's http:// or https:// address, or None.",
                hint="For example 'https://ops.example.com': notifications link to its admin.",
                id="taskmaster.E014",
            )
        )
    return errors


def _wanted(metrics: dict[str, Any]) -> bool:
    return any(metrics.get(key) for key in METRICS_DEFAULTS if key != "JOB")


def _is_destination(value: object) -> bool:
    return (
        isinstance(value, dict)
        and set(value) <= {"URL", "FORMAT", "ON", "SECRET"}
        and _is_url(value.get("URL"))
        and value.get("FORMAT", "json") in ("json", "slack")
        and isinstance(value.get("ON"), (list, tuple))
        and all(v in VERDICTS_TOLD for v in value["ON"])
        and isinstance(value.get("SECRET", ""), str)
    )


def settings_usable() -> None:
    """The settings this module's checks call wrong, as one configuration error (exit 2)."""
    problems = [str(e.msg) for e in check_settings()]
    if problems:
        raise ConfigurationError("invalid TASKMASTER settings: " + " ".join(problems))
