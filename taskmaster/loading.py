"""What a gate needs before it touches anything, each failure a configuration error.

The Celery app and its registry come from the project's code, and the database from its
settings: when one cannot be used, the commands say so in one sentence (exit 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DatabaseError

from taskmaster.conf import app_settings
from taskmaster.exits import ConfigurationError, GateFailed
from taskmaster.registry import Registry, build_registry


def check_settings_usable() -> None:
    """The TASKMASTER settings the system checks call wrong, as one configuration error."""
    from taskmaster.checks import check_settings

    problems = [str(e.msg) for e in check_settings()]
    if problems:
        raise ConfigurationError("invalid TASKMASTER settings: " + " ".join(problems))


def load_app() -> Any:
    """The configured Celery app, or a configuration error that says how to fix it."""
    try:
        return app_settings.celery_app()
    except Exception as exc:  # the user's module: any error in it is a configuration error
        raise ConfigurationError(
            f"cannot import the Celery app {app_settings.CELERY_APP!r} ({exc}); "
            "set TASKMASTER['CELERY_APP'] to its dotted path, e.g. 'project.celery.app'"
        ) from None


def load_registry(app: Any) -> Registry:
    try:
        return build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT))
    except Exception as exc:  # a task module that fails to import: the user's code, say so
        raise ConfigurationError(
            f"cannot load the tasks of the Celery app {app_settings.CELERY_APP!r}: {exc!r}"
        ) from None


@contextmanager
def database_errors(*, touched: bool) -> Iterator[None]:
    try:
        yield
    except DatabaseError as exc:
        if touched:
            raise GateFailed(f"the database failed: {exc}") from exc
        raise ConfigurationError(
            f"cannot use the database: {exc}. Has ./manage.py migrate run? Nothing was touched."
        ) from None
