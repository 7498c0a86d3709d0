"""Worker settings with ``tests.support.spin_tasks``: a task that keeps the CPU and never
yields, for a gevent pool that cannot answer remote control while it runs."""

from project.settings import *  # noqa: F403

CELERY_IMPORTS = ["tests.support.spin_tasks"]
