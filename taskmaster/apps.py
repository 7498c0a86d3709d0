from __future__ import annotations

from django.apps import AppConfig


class TaskmasterConfig(AppConfig):
    name = "taskmaster"
    verbose_name = "Taskmaster"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from taskmaster import checks, log  # noqa: F401  (registers the system checks)
        from taskmaster.metrics import export  # noqa: F401  (connects its receivers)
        from taskmaster.notifications import receivers  # noqa: F401  (connects its receivers)

        log.install()
