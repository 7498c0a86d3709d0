"""The deploy benchmark's tasks (benchmarks/deploys.py): one of each kind the gate knows, each
writing its start and its end to a ledger.

The ledger is a PostgreSQL table (``deploy_ledger``, in the database ``DEPLOYS_LEDGER_URL``
names), one row per event, committed before the task goes on: a row survives the SIGKILL of
the process that wrote it. After the run, a task with a start and no end was killed mid-run
(lost, if it was acknowledged when it started); a task with two starts was delivered twice.

The tasks only sleep: what a deploy does to them depends on how they are acknowledged and
how long they run, not on what they do.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psycopg
from celery import Task, shared_task

LEDGER_TABLE = """
CREATE TABLE IF NOT EXISTS deploy_ledger (
    task_id text NOT NULL,
    kind text NOT NULL,
    event text NOT NULL,  -- 'start' or 'end'
    at double precision NOT NULL,  -- time.time() in the worker
    pid integer NOT NULL,
    node text NOT NULL,  -- the worker's node name
    redelivered boolean NOT NULL
)
"""

_connection: tuple[int, psycopg.Connection[Any]] | None = None


def ledger() -> psycopg.Connection[Any]:
    """This process's connection (a pool process opens its own: none crosses a fork)."""
    global _connection
    if _connection is None or _connection[0] != os.getpid() or _connection[1].closed:
        url = os.environ["DEPLOYS_LEDGER_URL"]
        _connection = (os.getpid(), psycopg.connect(url, autocommit=True))
    return _connection[1]


def record(task: Task, kind: str, event: str) -> None:
    delivery = task.request.delivery_info or {}
    ledger().execute(
        "INSERT INTO deploy_ledger VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            task.request.id,
            kind,
            event,
            time.time(),
            os.getpid(),
            task.request.hostname or "",
            bool(delivery.get("redelivered")),
        ),
    )


def run(task: Task, kind: str, seconds: float) -> str:
    record(task, kind, "start")
    time.sleep(seconds)
    record(task, kind, "end")
    return kind


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def interruptible(self: Task, seconds: float) -> str:
    """Acknowledged late, idempotent: a stop interrupts it and the broker delivers it again."""
    return run(self, "interruptible", seconds)


@shared_task(bind=True, time_limit=60)
def short(self: Task, seconds: float) -> str:
    """Acknowledged when it starts, bounded by a hard time limit (the gate waits for it)."""
    return run(self, "short", seconds)


@shared_task(bind=True)
def blocking(self: Task, seconds: float) -> str:
    """Acknowledged when it starts, no time limit: a stop while it runs loses it."""
    return run(self, "blocking", seconds)
