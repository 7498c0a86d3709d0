"""Worker settings with remote control off (``worker_enable_remote_control = False``), as a
popular KEDA scaler tells its users to set: the worker consumes, and answers nothing."""

from project.settings import *  # noqa: F403

CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
