from __future__ import annotations

from django.apps import AppConfig


class TaskmasterConfig(AppConfig):
    name = "taskmaster"
    verbose_name = "Taskmaster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from taskmaster import checks  # noqa: F401  (registers the system checks)
