"""Worker side: taskmaster's own remote-control commands, the drain lease.

Every ``celery worker`` started where Taskmaster is installed loads this module: Celery's CLI
loads ``taskmaster.cli`` (an entry point), which imports it. A worker loads it as a ``tasks.py``
too: Celery's Django layout (``app.autodiscover_tasks()``) finds it in ``INSTALLED_APPS``, and a
plain Celery app may name it (``include=["taskmaster.tasks"]``). It imports Celery only, never
Django, so it runs in any worker.

While a gate drains a worker, the worker holds a **lease**: it remembers the queues it consumed
before the drain, and when the lease runs out without a renewal (the gate was SIGKILLed, its
machine is gone, the deploy that a clear verdict allowed never came) it consumes them again by
itself. ``taskmaster_release`` ends the lease early and puts the queues back at once.

From a shell: ``celery -A proj inspect taskmaster_lease_status`` shows the leases, and
``celery -A proj control taskmaster_release`` releases every lease.

A worker also **names its broker connections** after its node name as it starts
(``taskmaster:<hostname>``: a Redis client name, an AMQP ``connection_name``). A worker that
cannot answer remote control (a ``solo`` pool busy with a task, remote control off) still
holds its connections, and the broker lists them by that name: the gate sees it as alive
but silent. The name dies with the process.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from celery.signals import worker_init
from celery.utils.log import get_logger
from celery.worker import control
from celery.worker.control import control_command, inspect_command

# Under Celery's own logger, so the lease's news is in the worker's log whatever imported this
# module first: Celery's CLI loads it (taskmaster.cli) before Django configures logging, and a
# project's "taskmaster" logger (often propagate=False, for the gate's side) is not the worker's.
logger = get_logger("celery.worker.taskmaster")

# Where a worker keeps its lease: on its Consumer, which outlives broker reconnections (and
# keeps the drained queues deselected through them) but not a restart of the worker.
_ATTRIBUTE = "_taskmaster_lease"
CONNECTION_PREFIX = "taskmaster:"  # a worker's broker connections are named this + hostname


def connection_name(hostname: str) -> str:
    """The name a worker gives its broker connections; Redis refuses spaces and control
    characters in a client name, which no node name should have anyway."""
    return CONNECTION_PREFIX + "".join(c if "!" <= c <= "~" else "_" for c in hostname)


def worker_of(connection: str) -> str | None:
    """The node name in a connection name this module gave, or None."""
    if connection.startswith(CONNECTION_PREFIX) and len(connection) > len(CONNECTION_PREFIX):
        return connection[len(CONNECTION_PREFIX) :]
    return None


@worker_init.connect
def name_connections(sender: Any = None, **_: Any) -> None:
    """Name this worker's broker connections before it opens them (kombu reads the transport
    options at each connect). A name the project set itself is kept."""
    app, hostname = getattr(sender, "app", None), getattr(sender, "hostname", None)
    if app is None or not hostname:
        return
    options = dict(app.conf.broker_transport_options or {})
    name = connection_name(hostname)
    with app.connection_for_write() as conn:  # no connection is opened: the transport's kind
        driver, channel = conn.transport.driver_type, getattr(conn.transport, "Channel", None)
    if driver == "redis":
        if "client_name" in getattr(channel, "from_transport_options", ()):  # kombu >= 5.6
            options.setdefault("client_name", name)
        elif "client_name" not in options:
            _name_redis_connections(channel, name)
    elif driver == "amqp":
        properties = dict(options.get("client_properties") or {})
        properties.setdefault("connection_name", name)
        options["client_properties"] = properties
    else:
        return
    app.conf.broker_transport_options = options


def _name_redis_connections(channel: Any, name: str) -> None:
    """kombu before 5.6 has no ``client_name`` option: in this worker process, its Redis
    channels open connections of a class that names itself (redis-py's ``client_name``)."""
    for attribute in ("connection_class", "connection_class_ssl"):
        base = getattr(channel, attribute, None)
        if base is not None:
            setattr(channel, attribute, _named(base, name))


def _named(base: type, name: str) -> type:
    class Named(base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("client_name", name)
            super().__init__(*args, **kwargs)

    return Named


@dataclass
class Lease:
    run: int
    gate: str  # who holds it: "user@host (pid N)"
    expires: float  # time.monotonic() of this worker
    # The queues this worker consumed before the first drain, as kombu Queue objects: exactly
    # what it declared, so putting them back needs nothing from the gate.
    queues: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "gate": self.gate,
            "expires_in": round(max(0.0, self.expires - time.monotonic()), 1),
            "queues": sorted(self.queues),
        }


@control_command(
    args=[("run", int), ("seconds", float), ("gate", str)],
    signature="<run> <seconds> [gate]",
)
def taskmaster_lease(state: Any, run: int, seconds: float, gate: str = "", **_: Any) -> Any:
    """Hold (or renew) the drain lease of a gate run for this many seconds."""
    lease = _hold(state, int(run), float(seconds), gate)
    return {"ok": f"lease of gate run #{run} held for {float(seconds):g} s", **lease.describe()}


@control_command(
    args=[("run", int), ("seconds", float), ("gate", str)],
    signature="[run seconds [gate]]",
)
def taskmaster_look(
    state: Any, run: int | None = None, seconds: float | None = None, gate: str = "", **_: Any
) -> Any:
    """What a gate needs at each poll, in one reply: the consumers, the running, prefetched
    and scheduled tasks, and (given a run) the drain lease, renewed."""
    lease = _hold(state, int(run), float(seconds), gate) if run and seconds else None
    return {
        "queues": control.active_queues(state),
        "active": control.active(state, safe=True),
        "reserved": control.reserved(state),
        "scheduled": control.scheduled(state),
        "lease": lease.describe() if lease else {},
    }


def _hold(state: Any, run: int, seconds: float, gate: str) -> Lease:
    consumer = state.consumer
    lease = getattr(consumer, _ATTRIBUTE, None)
    if lease is None:
        lease = Lease(run=run, gate=gate, expires=0.0)
        setattr(consumer, _ATTRIBUTE, lease)
    # Called before each cancel: what the worker consumes now is what the drain takes away.
    # A lease taken over from an earlier gate (a clear verdict held, then another gate) keeps
    # the queues that gate recorded, so they still come back.
    consuming = consumer.task_consumer.queues if consumer.task_consumer else []
    for queue in consuming:
        lease.queues.setdefault(queue.name, queue)
    lease.run, lease.gate = run, gate or lease.gate
    lease.expires = time.monotonic() + seconds
    consumer.timer.call_after(seconds, _check_expiry, (consumer,))
    return lease


@control_command(args=[("run", int)], signature="[run]")
def taskmaster_release(state: Any, run: int | None = None, **_: Any) -> Any:
    """End the drain lease now (that of gate run ``run`` only, if given) and consume again."""
    consumer = state.consumer
    lease = getattr(consumer, _ATTRIBUTE, None)
    if lease is None:
        return {"ok": "no lease held"}
    if run is not None and lease.run != int(run):
        return {"ok": f"the lease belongs to gate run #{lease.run}: kept", **lease.describe()}
    setattr(consumer, _ATTRIBUTE, None)
    consumer.call_soon(_consume_again, consumer, lease, "released")
    return {"ok": f"lease of gate run #{lease.run} released", "queues": sorted(lease.queues)}


@inspect_command()
def taskmaster_lease_status(state: Any, **_: Any) -> Any:
    """The drain lease this worker holds, if any."""
    lease = getattr(state.consumer, _ATTRIBUTE, None)
    return lease.describe() if lease is not None else {}


def _check_expiry(consumer: Any) -> None:
    # A timer entry per grant: most find their lease renewed since and do nothing.
    lease = getattr(consumer, _ATTRIBUTE, None)
    if lease is None or lease.expires - time.monotonic() > 0.05:
        return
    setattr(consumer, _ATTRIBUTE, None)
    # With a threaded timer this runs off the consumer's thread: hand the work over to it.
    consumer.call_soon(_consume_again, consumer, lease, "ran out")


def _consume_again(consumer: Any, lease: Lease, why: str) -> None:
    cset = consumer.task_consumer
    if cset is None:  # between two connections: the next one consumes what is selected
        queues = consumer.app.amqp.queues
        for queue in lease.queues.values():
            queues.select_add(queue)
        return
    again = []
    for queue in lease.queues.values():
        selected = consumer.app.amqp.queues.select_add(queue)
        if not cset.consuming_from(selected.name):
            cset.add_queue(selected)
            again.append(selected.name)
    if again:
        cset.consume()
    # A lease that ran out means its gate vanished or the deploy never came: worth a warning.
    # A release is somebody's resume: news only when it gave something back.
    if again:
        level = logging.WARNING if why == "ran out" else logging.INFO
        logger.log(
            level,
            "taskmaster: the drain lease of gate run #%s %s; consuming again from %s",
            lease.run,
            why,
            ", ".join(sorted(again)),
        )
    else:
        logger.info(
            "taskmaster: the drain lease of gate run #%s %s; its queues were consumed already",
            lease.run,
            why,
        )
