"""What the commands share: loading the Celery app and the registry, argument types."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import CommandError

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
    except ImportError as exc:
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
