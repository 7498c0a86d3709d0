"""``./manage.py sync_task_registry``: record every registered task for the admin page."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError

from taskmaster.conf import load_app
from taskmaster.drain.policy import sync_registry
from taskmaster.exits import ConfigurationError
from taskmaster.gate.registry import load_registry
from taskmaster.management.common import SafeCommand


class Command(SafeCommand):
    help = (
        "Classify every task of the Celery app (interruptible, short, blocking) and record "
        "it for the admin's non-interruptible tasks page; tasks no longer registered are "
        "marked retired. Run it in the deploy pipeline, after the new code is checked out."
    )

    def handle(self, **options: Any) -> None:
        try:
            result = sync_registry(load_registry(load_app()))
        except ConfigurationError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None
        except DatabaseError as exc:
            raise CommandError(
                f"cannot record the tasks in the database: {exc} (has ./manage.py migrate run?)",
                returncode=2,
            ) from None
        self.stdout.write(f"Task registry synced: {result.summary()}.")
