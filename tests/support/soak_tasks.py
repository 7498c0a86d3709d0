"""The soak test's tasks: one of each kind the gate knows, each counting its runs in Redis.

Every task takes the Redis URL of the soak's ledger (a database the lab's broker does not
use) and the soak run's key prefix, and records two things per task id:

- ``<prefix>:started``: ``HINCRBY`` when the body starts (a redelivered task starts again);
- ``<prefix>:done``: ``HINCRBY`` when the body ran to its end, i.e. the task was executed.

A task killed mid-run counts in ``started`` and not in ``done``; the test's "executed" is
``done``. ``<prefix>:redelivered`` counts starts that RabbitMQ flagged as redeliveries.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from celery import Task, shared_task

_clients: dict[str, redis.Redis] = {}


def ledger(url: str) -> redis.Redis:
    """One client per URL and process (redis-py resets its pool after a fork)."""
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def _run(task: Task, store: str, prefix: str, seconds: float) -> str:
    client = ledger(store)
    task_id = task.request.id
    pipe = client.pipeline()
    pipe.hincrby(f"{prefix}:started", task_id, 1)
    if (task.request.delivery_info or {}).get("redelivered"):
        pipe.hincrby(f"{prefix}:redelivered", task_id, 1)
    pipe.execute()
    time.sleep(seconds)
    client.hincrby(f"{prefix}:done", task_id, 1)
    return task_id


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def interruptible(self: Task, store: str, prefix: str, seconds: float) -> Any:
    """Acknowledged late: a stop interrupts it and the broker delivers it again."""
    return _run(self, store, prefix, seconds)


@shared_task(bind=True, time_limit=10)
def short(self: Task, store: str, prefix: str, seconds: float) -> Any:
    """Acknowledged when it starts, bounded by a hard 10 s limit: the gate waits for it."""
    return _run(self, store, prefix, seconds)


@shared_task(bind=True)
def blocking(self: Task, store: str, prefix: str, seconds: float) -> Any:
    """Acknowledged when it starts, unbounded: a stop while it runs loses it."""
    return _run(self, store, prefix, seconds)
