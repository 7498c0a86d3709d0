"""System checks of broker settings that trap tasks (``taskmaster.W003`` to ``W005``).

- W003: an ``acks_late`` task whose hard time limit is longer than the broker's visibility
  timeout (Redis, SQS): the broker delivers its message again while it still runs, to another
  worker, and it runs twice.
- W004: tasks acknowledged when they start, with a prefetch multiplier above 1: workers
  prefetch their messages, and every prefetched one is a blocker that each gate waits out.
- W005: remote control off: no gate can drain the workers, or ask what they run; the broker
  still sees them consume, so every gate waits for them until its deadline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Warning, register

from taskmaster.checks.app import app_and_registry
from taskmaster.checks.settings import check_settings
from taskmaster.cluster.broker import redelivery
from taskmaster.gate.registry import Registry


@register("taskmaster")
def check_broker_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Settings that make a gate wait for nothing or a task run twice (W003 to W005)."""
    if check_settings():
        return []
    app, registry, _ = app_and_registry()
    if registry is None:
        return []  # check_tasks reports why
    return _run_twice(app, registry) + _prefetched(app, registry) + _deaf(app)


def _run_twice(app: Any, registry: Registry) -> list[CheckMessage]:
    """acks_late tasks that may run longer than the broker keeps their message invisible."""
    broker = redelivery(app)
    timeout = broker.get("visibility_timeout")
    if not timeout:
        return []  # RabbitMQ redelivers when the connection closes, not after a delay
    return [
        Warning(
            f"Task {name!r} is acks_late with a hard time limit of {info.time_limit:g} s, longer "
            f"than the broker's visibility_timeout ({timeout:g} s): {broker['transport']} "
            "delivers its message again to another worker while it still runs, so it runs "
            "twice.",
            hint=(
                "Raise the visibility timeout above the longest time limit "
                "(CELERY_BROKER_TRANSPORT_OPTIONS = {'visibility_timeout': seconds}), or lower "
                "the task's time_limit below it."
            ),
            obj=name,
            id="taskmaster.W003",
        )
        for name, info in registry.items()
        if info.acks_late and info.time_limit is not None and info.time_limit > timeout
    ]


def _prefetched(app: Any, registry: Registry) -> list[CheckMessage]:
    """Early-ack tasks that workers prefetch: each prefetched one blocks every gate."""
    multiplier = int(app.conf.worker_prefetch_multiplier)
    redis = redelivery(app).get("transport") in ("redis", "rediss", "sentinel")
    if multiplier == 1 or (redis and app.conf.worker_disable_prefetch):
        return []
    early = sorted(name for name, info in registry.items() if not info.acks_late)
    if not early:
        return []
    shown = ", ".join(early[:3]) + (f" and {len(early) - 3} more" if len(early) > 3 else "")
    held = "without limit" if multiplier == 0 else f"up to {multiplier} per process"
    return [
        Warning(
            f"worker_prefetch_multiplier is {multiplier} and {len(early)} task(s) are "
            f"acknowledged when they start ({shown}): workers prefetch their messages "
            f"({held}), and each prefetched one blocks a gate until a worker has run it, "
            "however short the task.",
            hint=(
                "Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1 (worker_prefetch_multiplier), so a "
                "worker holds one message per process beyond those it runs (on Redis, "
                "worker_disable_prefetch = True holds none), or make the tasks acks_late: "
                "a prefetched late-ack message goes back to the broker when its worker stops."
            ),
            obj="worker_prefetch_multiplier",
            id="taskmaster.W004",
        )
    ]


def _deaf(app: Any) -> list[CheckMessage]:
    """Workers that answer no remote control cannot be drained by any gate."""
    if app.conf.worker_enable_remote_control:
        return []
    return [
        Warning(
            "worker_enable_remote_control is False: no gate can drain these workers or ask "
            "what they run. The broker still sees them consume, so every gate waits for them "
            "until its deadline and then restores (exit 1).",
            hint=(
                "Turn remote control on (CELERY_WORKER_ENABLE_REMOTE_CONTROL = True, Celery's "
                "default). A queue-length autoscaler can count the task queues by name and "
                "leave the control queues aside."
            ),
            obj="worker_enable_remote_control",
            id="taskmaster.W005",
        )
    ]
