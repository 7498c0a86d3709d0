"""The only module that talks to ``celery.app.control``.

It discovers workers, reads their consumers and tasks, cancels and adds consumers, and
returns plain dataclasses. It decides nothing: the gate does. Every broker failure comes
out as ``BrokerUnavailable`` with a sentence a person can act on.
"""

from __future__ import annotations

import reprlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from kombu.exceptions import OperationalError

T = TypeVar("T")

# The declaration keys of a queue (kombu's Queue.as_dict) that add_consumer passes on to
# Queue.from_dict on the worker; without them RabbitMQ refuses a re-declaration.
_QUEUE_OPTIONS = (
    "queue_arguments",
    "binding_arguments",
    "consumer_arguments",
    "exclusive",
    "no_ack",
    "alias",
    "expires",
    "message_ttl",
    "max_length",
    "max_length_bytes",
    "max_priority",
)

_args_repr = reprlib.Repr()
_args_repr.maxstring = 60
_args_repr.maxother = 60
_args_repr.maxlevel = 2


class BrokerUnavailable(Exception):
    """The broker cannot be reached; the message says which one (password masked)."""


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


Queues = dict[str, list[dict[str, Any]]]  # hostname -> queue declarations (active_queues)


def queue_names(declarations: Iterable[dict[str, Any]]) -> set[str]:
    return {q["name"] for q in declarations}


def masked_broker_url(app: Any) -> str:
    """The broker URL with its password masked, safe to print."""
    with app.connection_for_write() as conn:
        return str(conn.as_uri(include_password=False))


class Cluster:
    """A Celery cluster seen through remote control."""

    def __init__(self, app: Any, *, reply_timeout: float) -> None:
        self.app = app
        self.reply_timeout = reply_timeout
        self._connection: Any = None
        # kombu wraps transport errors as OperationalError when it gives up retrying.
        self._errors = (
            *app.connection_for_write().connection_errors,
            OSError,
            OperationalError,
        )

    # -- connection ------------------------------------------------------------------

    @contextmanager
    def connected(self, *, retries: int = 2) -> Iterator[Cluster]:
        """Hold one broker connection for every call; fail fast if there is none."""
        conn = _bounded(self.app.connection_for_write())
        # Publish control messages on this connection, not through the app's producer pool:
        # the pool's connections would retry a lost broker without end (see _bounded).
        self.app.control.mailbox._producer_pool = None
        try:
            with self._broker_errors():
                conn.ensure_connection(max_retries=retries, interval_start=0.5, interval_step=0.5)
            self._connection = conn
            yield self
        finally:
            self._connection = None
            conn.release()

    def reconnect(self, *, retries: int) -> None:
        """Drop a broken connection and make a new one (raises BrokerUnavailable)."""
        if self._connection is None:
            return
        conn = self._connection
        with self._broker_errors():
            conn.close()
            conn.ensure_connection(max_retries=retries, interval_start=1, interval_step=1)

    @contextmanager
    def _broker_errors(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker at {masked_broker_url(self.app)}: {exc}"
            ) from exc

    def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        with self._broker_errors():
            return fn(*args, connection=self._connection, **kwargs)

    def _inspect(self, method: str, workers: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        inspect = self.app.control.inspect(
            destination=workers,
            timeout=self.reply_timeout,
            connection=self._connection,
            limit=len(workers) if workers else None,
        )
        with self._broker_errors():
            return getattr(inspect, method)(**kwargs) or {}

    # -- discovery ---------------------------------------------------------------------

    def ping(self) -> Counter[str]:
        """Hostnames that answer, with how many answered under each name.

        A count above one means two workers share a node name (Redis delivers a broadcast
        to both; RabbitMQ refuses the second one's exclusive control queue outright).
        """
        replies = self._call(self.app.control.ping, timeout=self.reply_timeout)
        return Counter(hostname for reply in replies or [] for hostname in reply)

    def queues(self, workers: list[str] | None = None) -> Queues:
        """Each worker's task consumers with their full declarations.

        Celery does not list its control (``*.pidbox``) or event (``celeryev.*``) queues
        here; they are filtered all the same, because cancelling them would cut the very
        channel the gate talks through.
        """
        return {
            hostname: [q for q in declarations or [] if not _is_control_queue(q["name"])]
            for hostname, declarations in self._inspect("active_queues", workers).items()
        }

    # -- drain and restore ------------------------------------------------------------

    def cancel(self, worker: str, queue: str) -> None:
        """Ask ``worker`` to stop consuming ``queue``; it answers before it does it."""
        self._call(
            self.app.control.cancel_consumer,
            queue,
            destination=[worker],
            reply=True,
            timeout=self.reply_timeout,
        )

    def add(self, worker: str, declaration: dict[str, Any]) -> None:
        """Ask ``worker`` to consume a queue again, declared exactly as it was."""
        exchange = declaration.get("exchange") or {}
        options = {key: declaration[key] for key in _QUEUE_OPTIONS if key in declaration}
        options.update(
            queue_durable=declaration.get("durable"),
            queue_auto_delete=declaration.get("auto_delete"),
            exchange_durable=exchange.get("durable"),
            exchange_auto_delete=exchange.get("auto_delete"),
            exchange_arguments=exchange.get("arguments"),
        )
        self._call(
            self.app.control.add_consumer,
            declaration["name"],
            exchange=exchange.get("name"),
            exchange_type=exchange.get("type") or "direct",
            routing_key=declaration.get("routing_key"),
            options=options,
            destination=[worker],
            reply=True,
            timeout=self.reply_timeout,
        )

    # -- tasks -------------------------------------------------------------------------

    def inspect_tasks(self, workers: list[str]) -> Inspection:
        """Running, prefetched and ETA tasks of ``workers``; who answered all three."""
        return inspection_from_replies(
            active=self._inspect("active", workers, safe=True),
            reserved=self._inspect("reserved", workers, safe=True),
            scheduled=self._inspect("scheduled", workers, safe=True),
        )


def inspection_from_replies(
    *, active: dict[str, Any], reserved: dict[str, Any], scheduled: dict[str, Any]
) -> Inspection:
    """Turn the replies of ``inspect().active/reserved/scheduled`` into one Inspection.

    A worker counts as answering only if it answered all three calls.
    """
    answered = set(active) & set(reserved) & set(scheduled)
    tasks: list[TaskSeen] = []
    for worker in sorted(answered):
        tasks += (_task(worker, "active", info) for info in active[worker] or [])
        tasks += (_task(worker, "reserved", info) for info in reserved[worker] or [])
        tasks += (
            _task(worker, "scheduled", entry.get("request", {}), eta=entry.get("eta"))
            for entry in scheduled[worker] or []
        )
    return Inspection(answered=frozenset(answered), tasks=tuple(tasks))


def _bounded(conn: Any) -> Any:
    """Make a publish on ``conn`` try to reconnect once, not forever.

    Celery's remote control publishes with ``retry=True`` and no policy, and kombu then
    retries a lost connection without end: a gate would hang past its deadline while the
    broker is away. The gate does its own reconnecting, with backoff, against its deadline.
    """
    ensure = conn.ensure

    def ensure_once(
        obj: Any, fun: Any, *args: Any, max_retries: int | None = None, **kw: Any
    ) -> Any:
        return ensure(obj, fun, *args, max_retries=1 if max_retries is None else max_retries, **kw)

    conn.ensure = ensure_once
    return conn


def _is_control_queue(name: str) -> bool:
    return name.endswith(".pidbox") or name.startswith("celeryev.")


def _task(worker: str, state: str, info: dict[str, Any], eta: str | None = None) -> TaskSeen:
    return TaskSeen(
        id=str(info.get("id")),
        name=str(info.get("name")),
        worker=worker,
        state=state,
        acknowledged=bool(info.get("acknowledged")),
        time_start=info.get("time_start") if state == "active" else None,
        eta=datetime.fromisoformat(eta) if eta else None,
        args=_args_repr.repr((info.get("args"), info.get("kwargs"))),
    )
