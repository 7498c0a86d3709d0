"""The ``TASKMASTER`` settings namespace, read live so ``override_settings`` works.

Every key is a property that reads ``settings.TASKMASTER`` at access time; nothing is
frozen at import. Validation lives in ``checks.py`` (system checks) so that a bad value
is reported as ``taskmaster.E00x`` instead of a crash deep inside a gate run.
"""

from __future__ import annotations

import math
from typing import Any, cast

from django.conf import settings as django_settings
from django.utils.module_loading import import_string

from taskmaster.exits import ConfigurationError

DEFAULTS: dict[str, Any] = {
    # Dotted path to the Celery app; None finds ``<settings package>.celery.app``.
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
    def CELERY_APP(self) -> str:
        path = self._get("CELERY_APP")
        if path:
            return str(path)
        # The layout of Celery's "First steps with Django": <project>/celery.py defines `app`.
        package = django_settings.SETTINGS_MODULE.rpartition(".")[0]
        return f"{package}.celery.app" if package else "celery.app"

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

    def celery_app(self) -> Any:
        """Import the configured Celery app (raises ImportError if it cannot)."""
        return import_string(self.CELERY_APP)


app_settings = Settings()


def load_app() -> Any:
    """The configured Celery app, or a configuration error that says how to fix it."""
    try:
        return app_settings.celery_app()
    except Exception as exc:  # the user's module: any error in it is a configuration error
        raise ConfigurationError(
            f"cannot import the Celery app {app_settings.CELERY_APP!r} ({exc}); "
            "set TASKMASTER['CELERY_APP'] to its dotted path, e.g. 'project.celery.app'"
        ) from None
