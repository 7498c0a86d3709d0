"""The ``TASKMASTER`` settings namespace, read live so ``override_settings`` works.

Every key is a property that reads ``settings.TASKMASTER`` at access time; nothing is
frozen at import. Validation lives in ``checks.py`` (system checks) so that a bad value
is reported as ``taskmaster.E00x`` instead of a crash deep inside a gate run.
"""

from __future__ import annotations

import math
import os
from typing import Any, cast

from django.conf import ENVIRONMENT_VARIABLE
from django.conf import settings as django_settings

from taskmaster.exits import ConfigurationError

DEFAULTS: dict[str, Any] = {
    # The Celery app, as ``celery -A`` names it ("config.celery_app", "proj.celery:app"); None
    # finds it in the packages above the settings module, as Celery's Django guide lays it out.
    "CELERY_APP": None,
    # Seconds the gate waits for blockers to end before it restores and says "blocked".
    "TIMEOUT": 600,
    # Seconds between two full polls of the workers (between them the gate watches its
    # blockers, so a verdict comes within a second of the last one ending).
    "INTERVAL": 20,
    # Seconds the workers stay drained after a clear verdict, held by their lease: the deploy
    # restarts them long before; a deploy called off or dead does not leave them drained.
    "HOLD": 1800,
    # A non-interruptible task whose hard time_limit is at most this many seconds is "short".
    "SHORT_TASK_LIMIT": 60,
    # Seconds to wait for a worker's reply to one remote-control call.
    "REPLY_TIMEOUT": 1.0,
    # Show task arguments (as bounded reprs) in reports. Off: arguments may hold secrets.
    "SHOW_TASK_ARGS": False,
    # Make taskmaster.W001 (blocking tasks) an error, so `check` fails CI.
    "BLOCKING_TASKS_ARE_ERRORS": False,
    # Blocking tasks accepted on purpose: W001 does not list them.
    "ACCEPTED_BLOCKING_TASKS": [],
    # RabbitMQ's management API (http://user:password@host:15672), to name every worker the
    # broker knows, even one that never answered a gate. Without it the gate counts
    # consumers with AMQP alone and names only the workers earlier gates heard.
    "RABBITMQ_MANAGEMENT_URL": None,
    # Prometheus metrics of the gate (docs/observability.md): {"PUSHGATEWAY": url} pushes them
    # after each gate, {"TEXTFILE": path} writes them for node_exporter's textfile collector,
    # {"TOKEN": token} lets a scraper read the mounted view. None: no metrics pushed or written.
    "METRICS": None,
    # Where to tell a verdict (docs/observability.md): a list of {"URL": ..., "FORMAT": "json"
    # or "slack", "ON": [verdicts], "SECRET": an optional key to sign the JSON body with}.
    "NOTIFICATIONS": [],
    # Seconds all the notifications of one verdict may take together, retries included: a dead
    # endpoint costs the gate at most this much, never its exit code.
    "NOTIFICATION_TIMEOUT": 5,
    # The site's address ("https://ops.example.com"): notifications link to the gate run's
    # admin page under it. None: no link.
    "SITE_URL": None,
}

# The keys of TASKMASTER["METRICS"] and their defaults.
METRICS_DEFAULTS: dict[str, Any] = {
    "PUSHGATEWAY": None,  # the Pushgateway's URL ("http://pushgateway:9091")
    "JOB": "taskmaster",  # the Pushgateway's job label (the group the gate replaces)
    "TEXTFILE": None,  # a *.prom file in node_exporter's --collector.textfile.directory
    "TOKEN": None,  # a bearer token that lets a scraper read the view without a login
}


def is_seconds(value: object) -> bool:
    # bool is an int, and "600" from an environment variable is not a number: both are
    # mistakes. inf and nan would make a gate that never ends or never waits.
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


class Settings:
    """Typed, live access to ``settings.TASKMASTER``."""

    def _get(self, key: str) -> Any:
        user = getattr(django_settings, "TASKMASTER", None)
        # Not a dict is taskmaster.E002, which the gate reports before it uses any value.
        return user.get(key, DEFAULTS[key]) if isinstance(user, dict) else DEFAULTS[key]

    @property
    def CELERY_APP(self) -> str | None:
        path = self._get("CELERY_APP")
        return str(path) if path else None

    def celery_app_names(self) -> list[str]:
        """Where to look for the Celery app: the setting, else the packages above the settings
        module, nearest first (``config.settings.local``: ``config.settings``, ``config``).
        Celery's Django guide imports the app in the project package's ``__init__``."""
        if self.CELERY_APP:
            return [self.CELERY_APP]
        # override_settings hides the module's name from settings: the environment has it too.
        module = django_settings.SETTINGS_MODULE or os.environ.get(ENVIRONMENT_VARIABLE, "")
        parts = module.split(".")[:-1]
        return [".".join(parts[:n]) for n in range(len(parts), 0, -1)]

    @property
    def TIMEOUT(self) -> float:
        return cast(float, self._get("TIMEOUT"))

    @property
    def INTERVAL(self) -> float:
        return cast(float, self._get("INTERVAL"))

    @property
    def HOLD(self) -> float:
        return cast(float, self._get("HOLD"))

    @property
    def SHORT_TASK_LIMIT(self) -> float:
        return cast(float, self._get("SHORT_TASK_LIMIT"))

    @property
    def REPLY_TIMEOUT(self) -> float:
        return cast(float, self._get("REPLY_TIMEOUT"))

    @property
    def SHOW_TASK_ARGS(self) -> bool:
        return bool(self._get("SHOW_TASK_ARGS"))

    @property
    def BLOCKING_TASKS_ARE_ERRORS(self) -> bool:
        return bool(self._get("BLOCKING_TASKS_ARE_ERRORS"))

    @property
    def ACCEPTED_BLOCKING_TASKS(self) -> list[str]:
        return list(self._get("ACCEPTED_BLOCKING_TASKS"))

    @property
    def RABBITMQ_MANAGEMENT_URL(self) -> str | None:
        url = self._get("RABBITMQ_MANAGEMENT_URL")
        return str(url) if url else None

    @property
    def METRICS(self) -> dict[str, Any]:
        """TASKMASTER["METRICS"] with its defaults (every key present; all None when unset)."""
        given = self._get("METRICS")
        return {**METRICS_DEFAULTS, **(given if isinstance(given, dict) else {})}

    @property
    def NOTIFICATIONS(self) -> list[dict[str, Any]]:
        return list(self._get("NOTIFICATIONS") or [])

    @property
    def NOTIFICATION_TIMEOUT(self) -> float:
        return cast(float, self._get("NOTIFICATION_TIMEOUT"))

    @property
    def SITE_URL(self) -> str | None:
        url = self._get("SITE_URL")
        return str(url).rstrip("/") if url else None


app_settings = Settings()


def find_celery_app() -> Any:
    """The project's Celery app, found as ``celery -A`` finds one (``celery.app.utils.find_app``:
    the attribute named, else ``app``, ``celery``, a ``celery`` submodule, or any Celery app the
    module holds), at each of ``celery_app_names()`` in turn. Raises ``LookupError`` that says
    where it looked and what each place held."""
    from celery import Celery
    from celery.app.utils import find_app

    tried = []
    for name in app_settings.celery_app_names():
        try:
            found = find_app(name)
        except Exception as exc:  # the project's own module: any error in it is possible
            tried.append(f"{name} ({_why(exc)})")
            continue
        if isinstance(found, Celery):
            return found
        tried.append(f"{name} (a {type(found).__name__}, not a Celery app)")
    raise LookupError(
        "tried " + ("; ".join(tried) or "nothing: DJANGO_SETTINGS_MODULE names no package")
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, AttributeError):
        return "no Celery app in it"
    if isinstance(exc, ImportError):
        return str(exc)
    return repr(exc)


def load_app() -> Any:
    """The configured Celery app, or a configuration error that says how to fix it."""
    try:
        return find_celery_app()
    except LookupError as exc:
        raise ConfigurationError(f"cannot find the Celery app; {exc}. {APP_HINT}") from None


APP_HINT = (
    "Set TASKMASTER['CELERY_APP'] to your Celery app as `celery -A` names it, e.g. "
    "'config.celery_app' or 'proj.celery:app'"
)
