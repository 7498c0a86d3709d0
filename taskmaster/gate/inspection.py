"""What a look at the fleet saw, as plain data: the workers' replies about their consumers
and tasks, and the broker's own count of consumers.

``cluster`` makes these from what Celery and the broker answer; the rules read only these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Where a worker holds a task, the running first: the order every listing of tasks follows.
TASK_STATES = ("active", "reserved", "scheduled")


def state_rank(state: str) -> int:
    """A task state's place in ``TASK_STATES``; other states (a worker's) come after."""
    return TASK_STATES.index(state) if state in TASK_STATES else len(TASK_STATES)


Queues = dict[str, list[dict[str, Any]]]  # hostname -> queue declarations (active_queues)


def queue_names(declarations: Iterable[dict[str, Any]]) -> set[str]:
    return {q["name"] for q in declarations}


def is_control_queue(name: str) -> bool:
    """A worker's remote-control (``*.pidbox``, replies too) or event (``celeryev.*``) queue:
    never drained, never a task queue."""
    return name.endswith(".pidbox") or name.startswith("celeryev.")


def task_queues(declarations: Any) -> list[dict[str, Any]]:
    return [q for q in declarations or [] if not is_control_queue(q["name"])]


@dataclass(frozen=True)
class TaskSeen:
    """One task as a worker reports it: running, prefetched, or held for its ETA."""

    id: str
    name: str
    worker: str
    state: str  # "active" | "reserved" | "scheduled"
    acknowledged: bool
    time_start: float | None  # wall-clock seconds, for active tasks
    eta: datetime | None  # for scheduled tasks
    args: str  # a bounded repr of args and kwargs, shown only when the settings ask


@dataclass(frozen=True)
class Inspection:
    """What the known workers said about their tasks in one poll."""

    answered: frozenset[str]
    tasks: tuple[TaskSeen, ...]

    def merged(self, other: Inspection) -> Inspection:
        return Inspection(self.answered | other.answered, self.tasks + other.tasks)


@dataclass(frozen=True)
class LiveWorker:
    """A worker, by its node name, that the broker shows alive."""

    worker: str
    evidence: str  # what the broker shows, for a person
    # The task queues it consumes, when the broker lists them (the management API); None
    # when the broker only shows that the worker is there.
    queues: frozenset[str] | None = None
    listens: bool = True  # it listens to remote control (its control queue or topic)


@dataclass(frozen=True)
class UnnamedConsumer:
    """A connection that consumes task queues with no node name the broker can give."""

    peer: str
    queues: frozenset[str]


@dataclass(frozen=True)
class BrokerCount:
    """What the broker says about consumers, whoever answers remote control."""

    method: str  # how it was counted; "" when the broker keeps no count
    consumers: dict[str, int] = field(default_factory=dict)  # queue -> consumers (RabbitMQ)
    listeners: int | None = None  # connections subscribed to remote control (Redis)
    alive: dict[str, LiveWorker] = field(default_factory=dict)
    unnamed: tuple[UnnamedConsumer, ...] = ()
    # Workers asked about that the broker says are gone (RabbitMQ: no control queue). Redis
    # cannot tell: a worker on kombu < 5.6 names no connection.
    absent: frozenset[str] = frozenset()
    note: str = ""  # why there is no count, or which part of it failed

    @property
    def available(self) -> bool:
        return bool(self.method)
