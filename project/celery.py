"""The demo project's Celery app, configured from Django settings (``CELERY_*``)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Every installed app's tasks.py: the project's tasks, and taskmaster.tasks (the drain lease).
app.autodiscover_tasks()
