"""The broker's own count: who consumes the app's queues, and which workers hold a connection,
whether or not they answer remote control.

A worker answers control commands from its consumer's event loop, so a ``solo`` pool running
a task, a gevent pool stuck in code that does not yield, or a worker with remote control off
answers nothing. The broker still sees each of them:

- RabbitMQ counts each queue's consumers (a passive ``queue_declare``), and each worker with
  remote control on holds an exclusive control queue, ``<hostname>.celery.pidbox``, which
  exists exactly as long as the worker's connection (a passive declare of it is refused as
  locked while it lives, and says "not found" once it is gone). The management API, when
  configured, lists them all and names the connections of the consumers.
- Redis cannot count the consumers of a list, but every worker with remote control on
  subscribes to the control exchange's topic: a PUBLISH there returns how many connections
  heard it (an empty message, which kombu's workers skip). Workers that run
  ``taskmaster.tasks`` name their connections (``CLIENT SETNAME``), and
  ``CLIENT LIST`` shows them, busy or not, remote control or not.
- The filesystem transport keeps no count at all.

This module only reports what the broker says; ``silent.py`` decides who is silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import Any, Protocol

from taskmaster.cluster.rabbitmq import Listing, ManagementAPI, ManagementError
from taskmaster.conf import app_settings
from taskmaster.gate.inspection import BrokerCount, LiveWorker, UnnamedConsumer, is_control_queue
from taskmaster.tasks import worker_of

NOT_FOUND, LOCKED = 404, 405  # AMQP reply codes of a passive declare


class ConsumerCounter(Protocol):
    def count(
        self, connection: Any, queues: Iterable[str], asked: Iterable[str], heard: Iterable[str]
    ) -> BrokerCount:
        """Count the consumers of ``queues``; say which workers are alive at the broker, of
        those ``asked`` about and those it finds, but for those ``heard`` (they answered)."""


def broker_counter(app: Any) -> ConsumerCounter:
    with app.connection_for_write() as conn:  # not opened: only the transport's kind
        driver = conn.transport.driver_type
        vhost = conn.virtual_host
    if driver == "amqp":
        url = app_settings.RABBITMQ_MANAGEMENT_URL
        return RabbitMQCounter(app, ManagementAPI(url, vhost) if url else None)
    if driver == "redis":
        return RedisCounter(app)
    return NoCount(
        f"the {driver} transport keeps no count of consumers: the gate sees only the workers "
        "that answer"
    )


class NoCount:
    def __init__(self, why: str) -> None:
        self.why = why

    def count(
        self, connection: Any, queues: Iterable[str], asked: Iterable[str], heard: Iterable[str]
    ) -> BrokerCount:
        return BrokerCount(method="", note=self.why)


MANAGEMENT_RETRY = 60.0  # seconds before a management API that failed is asked again


class RabbitMQCounter:
    def __init__(self, app: Any, management: ManagementAPI | None) -> None:
        mailbox = app.control.mailbox
        self.suffix = f".{mailbox.namespace}.pidbox"  # a worker's control queue: <node> + this
        self.reply_suffix = f".{mailbox.reply_exchange.name}"  # a client's reply queue
        self.management = management
        self.failed: tuple[float, str] | None = None  # when the management API last failed, why

    def count(
        self, connection: Any, queues: Iterable[str], asked: Iterable[str], heard: Iterable[str]
    ) -> BrokerCount:
        method, note, listing = "passive declares", "", None
        if self.management is not None:
            try:
                listing = self._listing(self.management)
                method = "passive declares and the management API"
            except ManagementError as exc:  # the count stands without names
                note = f"{exc}: the gate names only the workers it knows"
        counted, names = set(queues), set(asked)
        if listing is not None:  # every queue with a consumer, every worker's control queue
            counted |= {c.queue for c in listing.consumers if not is_control_queue(c.queue)}
            names |= {w for q in listing.queues if (w := self._worker(q)) is not None}
        declares = _PassiveDeclares(connection)
        try:
            consumers: dict[str, int] = {}
            for queue in sorted(counted):
                code, count = declares.declare(queue)
                if code in (200, NOT_FOUND, LOCKED):  # not there, or exclusive: not a task queue
                    consumers[queue] = count
                else:  # refused (a permission): said, not taken for "nobody"
                    note = "; ".join(filter(None, [note, f"cannot count {queue} ({code})"]))
            # A worker's control queue lives as long as its connection (exclusive since Celery
            # 5.6, auto-deleted before): a passive declare is refused as locked, or counts
            # its consumer, while the worker lives, and finds nothing once it has gone.
            alive: dict[str, LiveWorker] = {}
            absent: set[str] = set()
            for worker in sorted(names - set(heard)):
                code, count = declares.declare(worker + self.suffix)
                if code == LOCKED or (code == 200 and count):
                    alive[worker] = LiveWorker(worker, "its control queue is held open")
                elif code in (200, NOT_FOUND):
                    absent.add(worker)
        finally:
            declares.close()
        unnamed: tuple[UnnamedConsumer, ...] = ()
        if listing is not None:
            named, unnamed = self._named(listing, self._names)
            for worker, live in named.items():
                # What the listing adds: what each worker consumes, and from where; and the
                # workers with remote control off, known by the name of their connection.
                remote_control_off = worker not in absent and not live.listens
                if worker in alive or remote_control_off:
                    alive[worker] = live
        return BrokerCount(method, consumers, None, alive, unnamed, frozenset(absent), note)

    def _listing(self, management: ManagementAPI) -> Listing:
        """The management API's listing; one that failed is not asked again for a minute, so
        a host that does not answer costs one poll its timeout, not every poll."""
        if self.failed is not None and time.monotonic() - self.failed[0] < MANAGEMENT_RETRY:
            raise ManagementError(f"{self.failed[1]} (asked again within a minute)")
        try:
            return management.listing()
        except ManagementError as exc:
            self.failed = (time.monotonic(), str(exc))
            raise

    def _names(self) -> dict[str, str]:
        assert self.management is not None
        try:
            return self.management.connection_names()
        except ManagementError:  # names are a help: the consumers stay counted
            return {}

    def _worker(self, queue: str) -> str | None:
        if queue.endswith(self.suffix) and not queue.endswith(self.reply_suffix):
            return queue[: -len(self.suffix)] or None
        return None

    def _named(
        self, listing: Listing, names: Callable[[], dict[str, str]]
    ) -> tuple[dict[str, LiveWorker], tuple[UnnamedConsumer, ...]]:
        """Name each consuming connection by its worker's control queue, else by the name
        ``taskmaster.tasks`` gave it (asked only when some connection has no control queue);
        what has neither is a consumer."""
        owner: dict[str, str] = {}  # connection -> node name
        peers: dict[str, str] = {}
        consumed: dict[str, set[str]] = {}  # connection -> task queues
        for c in listing.consumers:
            peers[c.connection] = c.peer
            if (worker := self._worker(c.queue)) is not None:
                owner[c.connection] = worker
            elif not is_control_queue(c.queue):
                consumed.setdefault(c.connection, set()).add(c.queue)
        listens = {w for q in listing.queues if (w := self._worker(q)) is not None}
        if set(consumed) - set(owner):
            for connection, given in names().items():
                if (worker := worker_of(given)) is not None:
                    owner.setdefault(connection, worker)
        connections: dict[str, list[str]] = {}  # a worker may hold several
        for connection, worker in owner.items():
            connections.setdefault(worker, []).append(connection)
        alive: dict[str, LiveWorker] = {}
        for worker, held in sorted(connections.items()):
            queues = set().union(*(consumed.get(c, set()) for c in held))
            seen_from = ", ".join(sorted({peers[c] for c in held if c in peers}))
            how = "its control queue is held open" if worker in listens else "remote control off"
            alive[worker] = LiveWorker(
                worker,
                f"{how}; connected from {seen_from}" if seen_from else how,
                frozenset(queues),
                listens=worker in listens,
            )
        unnamed = tuple(
            UnnamedConsumer(peers[connection], frozenset(queues))
            for connection, queues in sorted(consumed.items())
            if connection not in owner
        )
        return alive, unnamed


class _PassiveDeclares:
    """Passive declares on one channel of their own; a refusal closes a channel, so a new
    one is opened after each (never the connection's default channel: control uses it)."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.errors = tuple(connection.channel_errors)
        self.channel: Any = None

    def declare(self, queue: str) -> tuple[int, int]:
        """(200, its consumers) when the queue is there to read, else (the refusal, 0)."""
        if self.channel is None:
            self.channel = self.connection.channel()
        try:
            return 200, int(self.channel.queue_declare(queue=queue, passive=True).consumer_count)
        except self.errors as exc:
            self.channel = None  # closed by the broker
            return int(getattr(exc, "reply_code", 0) or getattr(exc, "code", 0) or 0), 0

    def code(self, queue: str) -> int:
        return self.declare(queue)[0]

    def close(self) -> None:
        if self.channel is not None:
            with suppress(Exception):  # closing is a courtesy; the count is already taken
                self.channel.close()


class RedisCounter:
    def __init__(self, app: Any) -> None:
        self.exchange = app.control.mailbox.exchange.name  # the control exchange (fanout)

    def count(
        self, connection: Any, queues: Iterable[str], asked: Iterable[str], heard: Iterable[str]
    ) -> BrokerCount:
        channel = connection.default_channel
        # kombu's way to a plain command: a client of the channel's own pool, never the one
        # its BRPOP for replies waits on (a PUBLISH there would read the BRPOP's answer).
        with channel.conn_or_acquire() as client:
            return self._count(channel, client, tuple(connection.connection_errors))

    def _count(
        self, channel: Any, client: Any, errors: tuple[type[BaseException], ...]
    ) -> BrokerCount:
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        topic = channel.keyprefix_fanout + self.exchange  # fixed once the pool exists
        notes = []
        try:
            # An empty message: kombu's workers skip it, and Redis says how many heard it.
            listeners: int | None = int(client.publish(topic, ""))
        except errors:  # a lost broker is the caller's to handle
            raise
        except Exception as exc:  # refused (an ACL): the names below still count
            listeners = None
            notes.append(f"PUBLISH to the control topic refused ({exc})")
        named: dict[str, list[dict[str, Any]]] = {}
        try:
            for c in client.client_list():
                worker = worker_of(str(c.get("name") or ""))
                if worker is not None and str(c.get("db")) == db:
                    named.setdefault(worker, []).append(c)
        except errors:
            raise
        except Exception as exc:  # CLIENT LIST disabled or refused by the provider
            notes.append(f"CLIENT LIST refused ({exc}): workers are not named")
        alive = {}
        for worker, clients in sorted(named.items()):
            listens = any(int(c.get("psub") or 0) for c in clients)
            seen_from = min(str(c.get("addr", "?")) for c in clients)
            evidence = f"{len(clients)} connection(s) named by its worker, from {seen_from}"
            if not listens:
                evidence += ", none of them listening to remote control"
            alive[worker] = LiveWorker(worker, evidence, listens=listens)
        return BrokerCount(
            "PUBLISH and CLIENT LIST",
            listeners=listeners,
            alive=alive,
            note="; ".join(notes),
        )
