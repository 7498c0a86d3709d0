"""A Celery app with no Django at all, as a team without Django's layout would write it.

``include=["taskmaster.tasks"]`` is the one line that gives its workers the drain lease.
"""

import os

from celery import Celery

app = Celery("plain", broker=os.environ["CELERY_BROKER_URL"], include=["taskmaster.tasks"])
