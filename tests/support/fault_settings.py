"""Worker settings with the queues that make a restore hard (RabbitMQ).

Queues declared with arguments (a restore must declare them the same, or RabbitMQ refuses
with PRECONDITION_FAILED), a quorum queue, a broadcast queue (one ``bcast.<uuid>`` queue per
worker process) and worker-direct queues (``<node>.dq2``). Names come from ``LAB_QUEUE``.
"""

import os

from kombu import Queue
from kombu.common import Broadcast

from project.settings import *  # noqa: F403

LAB_QUEUE = os.environ.get("LAB_QUEUE", "celery")

CELERY_WORKER_DIRECT = True
CELERY_TASK_QUEUES = [
    Queue(LAB_QUEUE),
    Queue(f"{LAB_QUEUE}-prio", queue_arguments={"x-max-priority": 10}),
    Queue(f"{LAB_QUEUE}-ttl", queue_arguments={"x-message-ttl": 600000, "x-expires": 3600000}),
    Queue(f"{LAB_QUEUE}-quorum", queue_arguments={"x-queue-type": "quorum"}, durable=True),
    Broadcast(f"{LAB_QUEUE}-bcast"),
]
