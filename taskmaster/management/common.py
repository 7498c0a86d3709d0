"""What the commands share: loading the Celery app and the registry, argument types."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError

from taskmaster.conf import app_settings
from taskmaster.registry import Registry, build_registry


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be more than 0 seconds")
    return seconds


def load_app() -> Any:
    """The configured Celery app, or a usage error (exit 2) that says how to fix it."""
    try:
        return app_settings.celery_app()
    except Exception as exc:  # the user's module: any error in it is a configuration error
        raise CommandError(
            f"cannot import the Celery app {app_settings.CELERY_APP!r} ({exc}); "
            "set TASKMASTER['CELERY_APP'] to its dotted path, e.g. 'project.celery.app'",
            returncode=2,
        ) from None


def load_registry(app: Any) -> Registry:
    try:
        return build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT))
    except Exception as exc:  # a task module that fails to import: the user's code, say so
        raise CommandError(
            f"cannot load the tasks of the Celery app {app_settings.CELERY_APP!r}: {exc!r}",
            returncode=2,
        ) from None


def check_usable_settings() -> None:
    """Refuse to run on settings that the system checks call wrong (exit 2)."""
    from taskmaster.checks import check_settings

    errors = check_settings()
    if errors:
        raise CommandError(
            "invalid TASKMASTER settings: " + " ".join(str(e.msg) for e in errors), returncode=2
        )


@contextmanager
def database_errors(*, touched: bool) -> Iterator[None]:
    """A database failure as a sentence: exit 2 before any worker is touched, 5 after."""
    try:
        yield
    except DatabaseError as exc:
        if not touched:
            raise CommandError(
                f"cannot use the database: {exc}. Nothing was touched.", returncode=2
            ) from None
        raise CommandError(
            f"the database failed during the gate: {exc}. The gate restored what it could; "
            "check with ./manage.py resume_consumers once the database is back.",
            returncode=5,
        ) from None
