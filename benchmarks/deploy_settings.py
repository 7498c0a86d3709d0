"""Settings of the deploy benchmark's workers, gates and Celery CLI calls (benchmarks/deploys.py):
the demo project, its broker and database from the environment, plus the benchmark's tasks.

``CELERY_IMPORTS`` makes every worker register ``benchmarks.deploy_tasks`` and puts them in the
gate's registry (it imports the app's task modules), so both sides know which are acks_late.
"""

import os

from project.settings import *  # noqa: F403

CELERY_IMPORTS = ["benchmarks.deploy_tasks"]

if CELERY_BROKER_URL.startswith("redis"):  # noqa: F405
    # Redis gives a message a worker took and never acknowledged (an acks_late task whose
    # worker was SIGKILLed) back after this long, not at once as RabbitMQ does. Redis's
    # default is an hour; the benchmark sets it above the longest a prefetched early-ack
    # message can wait for its start (else Redis delivers it again: one task, two runs).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("DEPLOYS_VISIBILITY_TIMEOUT", "3600"))
    }
