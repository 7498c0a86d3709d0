"""Simulated Celery workers on a real broker: many in one OS process, each a worker to the gate.

A simulated worker is what the broker and remote control see of a real ``celery worker``, and
nothing more (it never runs a task):

- its node name, and its own control queue bound as Celery binds a worker's: a kombu ``Node``
  of the app's own mailbox (``app.control.mailbox``), listening on ``<hostname>.celery.pidbox``
  (exclusive, on its connection), so a broadcast with ``destination`` and ``limit`` reaches it
  exactly as it reaches a real worker;
- its consumers on the task queues, selected as ``-Q`` selects them (``app.amqp.Queues`` with
  the app's settings): a real ``basic.consume`` on RabbitMQ (the broker's ``consumer_count``
  counts it), a real ``BRPOP`` on Redis; its broker connections are named as
  ``taskmaster.tasks`` names a real worker's (``taskmaster:<hostname>``), so ``CLIENT LIST``
  finds it;
- its heartbeat: Celery's own ``Heart`` sends ``worker-online``, a ``worker-heartbeat`` every
  2 s and ``worker-offline`` at its end, as a worker does by default;
- its answers: the control commands are Celery's own handlers (``celery.worker.control``'s
  ``Panel``, with ``taskmaster.tasks``' commands in it), called by kombu's own ``Node`` on a
  small stand-in for the worker's ``Consumer`` (``StandIn``) whose queue methods are Celery's
  own (``Consumer.add_task_queue``, ``cancel_task_queue``): the replies cannot drift from
  Celery's, and ``cancel_consumer`` / ``add_consumer`` / the drain lease really
  ``basic.cancel`` and ``basic.consume`` on the broker, after the reply, as Celery does
  (``call_soon``), and before its next command, as a worker with a loop of its own does
  (``SimulatedWorker.catch_up``);
- its tasks: idle by default. A task message delivered to it is held, never run: prefetched
  (``reserved``), or ``scheduled`` when it has an ETA, acknowledged never (it goes back to the
  broker when the simulator stops). Celery's handlers read a worker's tasks from the
  module-level containers of ``celery.worker.state``; each simulated worker keeps its own and
  lends them to those containers while it handles a message (``TaskBook``).

With ``--without-taskmaster`` it is a worker of an image without Taskmaster: Celery's
commands only (no drain lease), its connections unnamed.

What it does not do: run tasks, send task events, answer commands that need a pool or a
worker controller (``stats``, ``pool_grow``: they answer with Celery's error reply), keep
revoked ids per worker (one set per process). A process hosts many simulated workers on one
kombu event loop (``Hub``), as a worker's consumer runs on one; on RabbitMQ several may share
one AMQP connection (``--per-connection``: RabbitMQ's socket limit, 832 by default, is below
a thousand), each on channels of its own.

Run one process (the fleet, ``fleet.py``, starts several)::

    python -m benchmarks.fleet.simulator --first 0 --count 125 --queues q1
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from kombu.asynchronous import Hub as _Hub
from kombu.asynchronous.timer import Timer as _Timer

from benchmarks.fleet.fleet import NAME, READY, node_names

logger = logging.getLogger("fleet.simulator")
Hub: Any = _Hub  # kombu's event loop and timer (untyped)
Timer: Any = _Timer


def load_app(path: str) -> Any:
    """The Celery app, loaded as ``celery -A`` loads it for a worker: Django set up first
    (the project's tasks and ``taskmaster.tasks`` found by autodiscovery), then the app's
    default modules imported, and ``taskmaster.tasks`` (which Celery's CLI loads through
    taskmaster's entry point) for its control commands."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        import django

        django.setup()
    from celery.utils.imports import symbol_by_name

    app = symbol_by_name(path)
    app.loader.import_default_modules()
    import taskmaster.tasks  # noqa: F401  (registers the taskmaster_* commands in Panel)

    app.finalize(auto=True)
    return app


class TaskBook:
    """One simulated worker's tasks. Celery's handlers (and its ``task_reserved``) read and
    write ``celery.worker.state``'s module-level containers, one set per process: a worker's
    own are put there while it handles a message, and taken back after."""

    def __init__(self) -> None:
        self.requests: dict[str, Any] = {}
        self.active: set[Any] = set()
        self.reserved: set[Any] = set()
        self.scheduled: set[Any] = set()

    @contextmanager
    def lent(self) -> Iterator[None]:
        from celery.worker import state

        if not (self.requests or state.requests):  # idle: nothing to lend or take back
            yield
            return
        shared = (
            (state.active_requests, self.active),
            (state.reserved_requests, self.reserved),
            (state.scheduled_requests, self.scheduled),
        )
        state.requests.update(self.requests)
        for container, own in shared:
            container.update(own)
        try:
            yield
        finally:
            self.requests = dict(state.requests)
            state.requests.clear()
            self.active, self.reserved, self.scheduled = (set(c) for c, _ in shared)
            for container, _ in shared:
                container.clear()


class OwnTimer(Timer):  # type: ignore[misc]  # a subclass of Any
    """A worker's timer. What runs later (the drain lease's expiry, the heartbeat) runs on the
    event loop's timer; what a worker holds for an ETA stays here, where Celery's
    ``scheduled`` handler reads it (``timer.schedule.queue``), and never fires: a simulated
    worker runs nothing."""

    def __init__(self, loop_timer: Any) -> None:
        super().__init__()
        self.loop_timer = loop_timer

    def call_after(self, *args: Any, **kwargs: Any) -> Any:
        return self.loop_timer.call_after(*args, **kwargs)

    def call_repeatedly(self, *args: Any, **kwargs: Any) -> Any:
        return self.loop_timer.call_repeatedly(*args, **kwargs)

    def cancel(self, tref: Any) -> None:
        self.loop_timer.cancel(tref)


class OwnQueues:
    """The app as one worker sees it: ``app.amqp.queues`` is the worker's own selection (a
    worker's ``-Q`` selects them in the app's one ``Queues``; here every worker has its own);
    everything else is the app's."""

    def __init__(self, app: Any, queues: Any) -> None:
        self._app = app
        self.amqp = _Amqp(app.amqp, queues)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


class _Amqp:
    def __init__(self, amqp: Any, queues: Any) -> None:
        self._amqp = amqp
        self.queues = queues

    def __getattr__(self, name: str) -> Any:
        return getattr(self._amqp, name)


def _celery_consumer() -> Any:
    from celery.worker.consumer.consumer import Consumer

    return Consumer


class StandIn:
    """What Celery's and taskmaster's control handlers touch of a worker's ``Consumer``
    (``state.consumer``): its task consumer, its app's queues, its timer, Celery's own
    methods to add or cancel a task queue, and a way to do work after a reply."""

    _Consumer = _celery_consumer()
    add_task_queue = _Consumer.add_task_queue
    cancel_task_queue = _Consumer.cancel_task_queue

    def __init__(self, hostname: str, app: Any, hub: Any, timer: OwnTimer) -> None:
        self.hostname = hostname
        self.app = app
        self.hub = hub
        self.timer = timer
        self.task_consumer: Any = None
        self.event_dispatcher: Any = None
        self.gossip = None

    def call_soon(self, p: Any, *args: Any, **kwargs: Any) -> Any:
        """Celery's ``Consumer.call_soon``: done after the reply (``SimulatedWorker.defer``)."""
        from vine import ppartial

        return self.defer(ppartial(p, *args, **kwargs))

    def defer(self, p: Any) -> Any:  # the worker's own (set by SimulatedWorker)
        raise NotImplementedError


class SimulatedWorker:
    """One worker as the broker and remote control see it."""

    def __init__(
        self,
        app: Any,
        hub: Any,
        hostname: str,
        *,
        queues: list[str],
        connection: Any,
        concurrency: int = 1,
        heartbeat: bool = True,
        taskmaster: bool = True,
        own_connection: bool = True,
    ) -> None:
        self.app = app
        self.hub = hub
        self.hostname = hostname
        self.selected = queues
        self.connection = connection
        self.concurrency = concurrency
        self.heartbeat = heartbeat
        self.taskmaster = taskmaster  # False: an image without Taskmaster (Celery's commands only)
        self.own_connection = own_connection  # the worker's alone: its default channel is its
        self.book = TaskBook()
        self.timer = OwnTimer(hub.timer)
        self.channels: list[Any] = []
        self.heart: Any = None
        self.node: Any = None
        self.pidbox: Any = None
        self.prefetch = 0  # as Celery's QoS: concurrency x prefetch multiplier, + ETA tasks
        self.qos_global = False
        self.commands: list[tuple[Any, Any]] = []  # received, not handled yet
        self.deferred: list[Any] = []  # call_soon'd by the last command handled
        self.busy = False

    def channel(self, default: bool = False) -> Any:
        if default and self.own_connection:
            return self.connection.default_channel
        channel = self.connection.channel()
        self.channels.append(channel)
        return channel

    def start(self) -> None:
        from celery.utils.collections import AttributeDict
        from celery.utils.functional import pass1
        from celery.worker import control

        app = self.app
        # -Q, as celery.worker.WorkController.setup_queues selects them
        queues = app.amqp.Queues(app.conf.task_queues)
        if self.selected:
            queues.select(self.selected)
        consumer = StandIn(self.hostname, OwnQueues(app, queues), self.hub, self.timer)
        consumer.defer = self.defer  # type: ignore[method-assign]
        self.consumer = consumer

        # The task consumer, as celery.worker.consumer.tasks.Tasks starts it.
        channel = self.channel(default=True)
        self.prefetch = self.concurrency * int(app.conf.worker_prefetch_multiplier or 0)
        self.qos_global = not self.connection.qos_semantics_matches_spec
        if self.prefetch:
            channel.basic_qos(0, self.prefetch, self.qos_global)
        consumer.task_consumer = app.amqp.TaskConsumer(
            channel, queues=list(queues.consume_from.values())
        )
        consumer.task_consumer.on_message = self.on_task
        consumer.task_consumer.consume()

        # Remote control, as celery.worker.pidbox.Pidbox starts it, replying on its channel.
        mailbox = app.control.mailbox(self.connection)
        mailbox._producer_pool = None
        mailbox.__dict__.pop("producer_pool", None)
        handlers = control.Panel.data
        if not self.taskmaster:
            handlers = {k: v for k, v in handlers.items() if not k.startswith("taskmaster_")}
        self.node = mailbox.Node(
            self.hostname,
            handlers=handlers,
            state=AttributeDict(app=app, hostname=self.hostname, consumer=consumer, tset=pass1),
        )
        self.node.channel = self.channel()
        self.pidbox = self.node.listen(callback=self.on_control)

        # Events: worker-online, a worker-heartbeat every 2 s, worker-offline at the end,
        # as celery.worker.consumer.events.Events and heart.Heart send them by default.
        if self.heartbeat:
            from celery.worker.heartbeat import Heart

            dispatcher = app.events.Dispatcher(
                hostname=self.hostname, channel=self.channel(), groups=["worker"]
            )
            consumer.event_dispatcher = dispatcher
            self.heart = Heart(self.timer, dispatcher)
            self.heart.start()

    def on_control(self, body: Any, message: Any) -> None:
        """celery.worker.pidbox.Pidbox.on_message, one command at a time (``catch_up``)."""
        self.commands.append((body, message))
        self.catch_up()

    def defer(self, p: Any) -> None:
        """``call_soon``: after the reply, before the next command (``catch_up``)."""
        self.deferred.append(p)
        self.hub.call_soon(self.catch_up)

    def catch_up(self) -> None:
        """Handle the commands received, each after what the one before deferred (in the
        loop's next turn, or before the next command if that comes first).

        A worker's event loop is its own: it does what a command deferred (a cancel, a
        consume again: a few broker round trips) long before the gate's next command reaches
        it. Here a hundred workers share one loop, and a broker round trip of one worker
        (py-amqp waits for its reply, and meanwhile dispatches what arrives on the same
        connection) could let its next command (the gate's check that the cancel is done)
        overtake what it deferred: a command that arrives meanwhile waits its turn.
        """
        if self.busy:
            return
        self.busy = True
        try:
            while self.deferred or self.commands:
                if self.deferred:
                    self.deferred.pop(0)()
                    continue
                self.handle(*self.commands.pop(0))
                if self.deferred:  # done in the loop's next turn (defer), as Celery does it:
                    break  # meanwhile the other workers of this process answer
        finally:
            self.busy = False

    def handle(self, body: Any, message: Any) -> None:
        """celery.worker.pidbox.Pidbox.on_message."""
        self.app.clock.forward()
        with self.book.lent():
            try:
                self.node.handle_message(body, message)
            except KeyError as exc:
                logger.error("%s: no such control command: %s", self.hostname, exc)
            except Exception as exc:
                logger.error("%s: control command error: %r", self.hostname, exc, exc_info=True)

    def on_task(self, message: Any) -> None:
        """A task delivered: held, never run (celery.worker.strategy.default's bookkeeping)."""
        from celery.utils.imports import symbol_by_name
        from celery.worker.state import task_reserved, task_scheduled

        name = (message.headers or {}).get("task")
        task = self.app.tasks.get(name)
        if task is None:  # Celery rejects a task it does not know (and logs it)
            logger.error("%s: received unregistered task %r: rejected", self.hostname, name)
            message.reject_log_error(logger, self.connection.connection_errors)
            return
        request = symbol_by_name(task.Request)(
            message,
            app=self.app,
            hostname=self.hostname,
            task=task,
            connection_errors=self.connection.connection_errors,
            body=message.body,
            headers=message.headers,
            decoded=False,
            utc=self.app.uses_utc_timezone(),
        )
        with self.book.lent():
            if request.eta:
                self.timer.call_at(request.eta, _never, (request,), priority=6)
                task_scheduled(request)
            else:
                task_reserved(request)
        if request.eta and self.prefetch:  # an ETA task does not take a prefetch slot
            self.prefetch += 1
            self.consumer.task_consumer.qos(
                prefetch_count=self.prefetch, apply_global=self.qos_global
            )

    def stop(self) -> None:
        """As a worker's warm shutdown: worker-offline, consumers cancelled, channels closed
        (held messages go back to the broker with them)."""
        if self.heart is not None:
            with suppress(Exception):
                self.heart.stop()
        for consumer in (self.pidbox, self.consumer.task_consumer):
            with suppress(Exception):
                consumer.cancel()
        for channel in [self.node.channel, *self.channels]:
            with suppress(Exception):
                channel.close()


def _never(request: Any) -> None:  # an ETA entry's function: a simulated worker runs nothing
    pass


class Host:
    """One OS process: many simulated workers on one kombu event loop."""

    def __init__(
        self,
        app: Any,
        names: list[str],
        *,
        queues: list[str],
        per_connection: int = 1,
        concurrency: int = 1,
        heartbeat: bool = True,
        taskmaster: bool = True,
    ) -> None:
        from taskmaster.tasks import connection_name

        self.app = app
        self.hub = Hub()
        self.workers: list[SimulatedWorker] = []
        self.connections: list[Any] = []
        self.stopping = False
        driver = app.connection_for_read().transport.driver_type
        if driver not in ("amqp", "redis"):
            raise SystemExit(f"the fleet simulates workers on RabbitMQ or Redis, not {driver}")
        if driver == "redis":
            per_connection = 1  # a Redis connection is named after one worker
        for start in range(0, len(names), per_connection):
            group = names[start : start + per_connection]
            name = connection_name(group[0]) if len(group) == 1 else f"fleet:{os.getpid()}:{start}"
            connection = self.connect(driver, name if taskmaster else "")
            for hostname in group:
                self.workers.append(
                    SimulatedWorker(
                        app,
                        self.hub,
                        hostname,
                        queues=queues,
                        connection=connection,
                        concurrency=concurrency,
                        heartbeat=heartbeat,
                        taskmaster=taskmaster,
                        own_connection=len(group) == 1,
                    )
                )

    def connect(self, driver: str, name: str) -> Any:
        """A connection named as taskmaster.tasks names a worker's (``name_connections``);
        without a name (an image without Taskmaster), as Celery leaves it."""
        options: dict[str, Any] = {}
        if name and driver == "redis":
            options = {"client_name": name}
        elif name:
            options = {"client_properties": {"connection_name": name}}
        connection = self.app.connection_for_read(transport_options=options, heartbeat=0)
        connection.ensure_connection(max_retries=3)
        connection.transport.register_with_event_loop(connection.connection, self.hub)
        self.connections.append(connection)
        return connection

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def run(self) -> None:
        loop = self.hub.create_loop()
        while not self.stopping:
            next(loop)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        for connection in self.connections:
            with suppress(Exception):
                connection.release()
        with suppress(Exception):
            self.hub.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="project.celery.app", help="as celery -A (a path)")
    parser.add_argument("--first", type=int, default=0, help="number of the first worker")
    parser.add_argument("--count", type=int, default=1, help="workers in this process")
    parser.add_argument("--name", default=NAME, help=f"node name pattern ({NAME})")
    parser.add_argument("--queues", default="", help="comma-separated, as -Q (default: all)")
    parser.add_argument("--concurrency", type=int, default=1, help="as -c: the prefetch")
    parser.add_argument("--per-connection", type=int, default=1, help="workers per AMQP link")
    parser.add_argument("--without-heartbeat", action="store_true", help="as Celery's")
    parser.add_argument(
        "--without-taskmaster", action="store_true", help="an image without Taskmaster"
    )
    parser.add_argument("--loglevel", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.loglevel.upper(), format="[%(asctime)s: %(levelname)s/fleet] %(message)s"
    )
    app = load_app(args.app)
    host = Host(
        app,
        node_names(args.first, args.count, args.name),
        queues=[q for q in args.queues.split(",") if q],
        per_connection=max(1, args.per_connection),
        concurrency=args.concurrency,
        heartbeat=not args.without_heartbeat,
        taskmaster=not args.without_taskmaster,
    )

    def stop(signum: int, frame: Any) -> None:
        host.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.monotonic()
    profile = os.environ.get("FLEET_PROFILE")  # a file: the process's cProfile, at its end
    try:
        host.start()
        print(f"{READY} {len(host.workers)} {time.monotonic() - started:.2f}", flush=True)
        if profile:
            import cProfile

            with cProfile.Profile() as profiler:
                host.run()
            profiler.dump_stats(f"{profile}.{os.getpid()}")
        else:
            host.run()
    finally:
        host.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
