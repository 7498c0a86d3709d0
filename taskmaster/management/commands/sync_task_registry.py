"""``./manage.py sync_task_registry``: record every registered task for the admin page."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from taskmaster.management.common import load_app, load_registry
from taskmaster.policy import sync_registry


class Command(BaseCommand):
    help = (
        "Classify every task of the Celery app (interruptible, short, blocking) and record "
        "it for the admin's non-interruptible tasks page; tasks no longer registered are "
        "marked retired. Run it in the deploy pipeline, after the new code is checked out."
    )
    # A deploy step: a warning about some other app must not stop it (`check` runs in CI).
    requires_system_checks = ()

    def handle(self, **options: Any) -> None:
        registry = load_registry(load_app())
        try:
            result = sync_registry(registry)
        except DatabaseError as exc:
            raise CommandError(
                f"cannot record the tasks in the database: {exc} (has ./manage.py migrate run?)",
                returncode=2,
            ) from None
        self.stdout.write(f"Task registry synced: {result.summary()}.")
