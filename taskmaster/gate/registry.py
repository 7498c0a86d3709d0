"""The acks_late registry: every task of the Celery app, classified for the gate.

A task is *interruptible* when its message is acknowledged late (``acks_late``): if the
worker stops, the broker delivers it again. Otherwise it is acknowledged when it starts,
and stopping the worker loses it; it is *short* when a hard ``time_limit`` bounds it by
the short-task limit (the worker will finish it soon), *blocking* otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.db.models import TextChoices

from taskmaster.conf import app_settings
from taskmaster.exits import ConfigurationError


class Classification(TextChoices):
    """What stopping a worker does to a task; the one definition (models use it too)."""

    INTERRUPTIBLE = "interruptible", "interruptible"
    SHORT = "short", "short"
    BLOCKING = "blocking", "blocking"
    UNKNOWN = (
        "unknown",
        "unknown",
    )  # a task the worker runs but the deployer's code does not register


def classify(*, acks_late: bool, time_limit: float | None, short_limit: float) -> Classification:
    if acks_late:
        return Classification.INTERRUPTIBLE
    if time_limit is not None and 0 < time_limit <= short_limit:
        return Classification.SHORT
    return Classification.BLOCKING


@dataclass(frozen=True)
class TaskInfo:
    name: str
    acks_late: bool
    reject_on_worker_lost: bool
    time_limit: float | None
    soft_time_limit: float | None
    queue: str | None
    classification: Classification

    @property
    def interruptible(self) -> bool:
        return self.classification is Classification.INTERRUPTIBLE


Registry = dict[str, TaskInfo]


class RegistryNotReady(Exception):
    """The app's task modules are being imported right now (a re-entrant call)."""


def import_task_modules(app: Any) -> None:
    """Import the app's task modules once (``autodiscover_tasks()`` waits for a worker).

    Celery's Django fixup runs Django's system checks while it imports them, and our checks
    build the registry: the state kept on the app breaks that loop.
    """
    state = getattr(app, "_taskmaster_tasks_imported", None)
    if state is None:
        app._taskmaster_tasks_imported = False
        try:
            app.loader.import_default_modules()
        except BaseException:
            del app._taskmaster_tasks_imported
            raise
        app._taskmaster_tasks_imported = True
    elif state is False:
        raise RegistryNotReady(app)


def build_registry(app: Any, *, short_limit: float) -> Registry:
    """Classify every task of ``app`` (Celery's own ``celery.*`` tasks aside).

    Imports the app's task modules first (``autodiscover_tasks()`` is lazy until a worker
    starts), so the registry sees what a worker would register.
    """
    import_task_modules(app)
    tasks = app.tasks  # finalizes the app: task_annotations and config defaults applied
    return {
        name: task_info(app, task, short_limit=short_limit)
        for name, task in sorted(tasks.items())
        if not name.startswith("celery.")
    }


def load_registry(app: Any) -> Registry:
    """The registry of the configured app, or a configuration error that says why not."""
    try:
        return build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT))
    except Exception as exc:  # a task module that fails to import: the user's code, say so
        raise ConfigurationError(
            f"cannot load the tasks of the Celery app {app.main!r}: {exc!r}"
        ) from None


def time_limit(registry: Registry, name: str) -> float | None:
    """The hard time limit of a task, if the registry knows the task and it has one."""
    info = registry.get(name)
    return info.time_limit if info is not None else None


def task_info(app: Any, task: Any, *, short_limit: float) -> TaskInfo:
    """What the worker will do with this task, as its own options, then ``task_annotations``,
    then the app's settings decide. A bound task carries its annotations and, on every
    Celery, ``task_acks_late`` and ``task_reject_on_worker_lost``; the global time limits are
    bound onto it by Celery 5.7 only (``Task.from_config``), but every worker enforces them
    (its pool's default timeouts), so they are read from the settings where the task has none."""
    acks_late = bool(task.acks_late)
    time_limit = _seconds(_own_or(task.time_limit, app.conf.task_time_limit))
    return TaskInfo(
        name=task.name,
        acks_late=acks_late,
        reject_on_worker_lost=bool(task.reject_on_worker_lost),
        time_limit=time_limit,
        soft_time_limit=_seconds(_own_or(task.soft_time_limit, app.conf.task_soft_time_limit)),
        queue=_queue_of(app, task.name),
        classification=classify(
            acks_late=acks_late, time_limit=time_limit, short_limit=short_limit
        ),
    )


def _own_or(value: Any, default: Any) -> Any:
    return value if value is not None else default


def _seconds(value: Any) -> float | None:
    return float(value) if value else None


def _queue_of(app: Any, name: str) -> str | None:
    """The queue a plain ``delay()`` of this task is routed to (task_routes applied)."""
    try:
        route = app.amqp.router.route({}, name, args=(), kwargs={})
    except Exception:  # a router that needs real arguments: the default queue is the honest guess
        return str(app.conf.task_default_queue)
    queue = route.get("queue")
    return cast("str | None", getattr(queue, "name", queue))
