"""The demo project with the test's own queue (``LAB_QUEUE``) as its default queue, the way a
real project declares the queues its workers consume: a gate counts the consumers of the
queues the app declares. ``TEST_TASKMASTER`` (JSON) replaces ``TASKMASTER`` when set."""

import os

from tests.support.contract_settings import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ.get("LAB_QUEUE", "celery")
