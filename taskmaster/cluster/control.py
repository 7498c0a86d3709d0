"""The only module that talks to ``celery.app.control``.

It discovers workers, reads their consumers and tasks, cancels and adds consumers, and
returns plain dataclasses. It decides nothing: the gate does. Every broker failure comes
out as ``BrokerUnavailable`` with a sentence a person can act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kombu.exceptions import OperationalError

from taskmaster.cluster.broker import broker_label, transport_errors
from taskmaster.cluster.consumers import ConsumerCounter, NoCount, broker_counter
from taskmaster.cluster.replies import inspection_from_replies
from taskmaster.exits import BrokerUnavailable
from taskmaster.gate.inspection import BrokerCount, Inspection, Queues, task_queues

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


@dataclass(frozen=True)
class Discovery:
    """Who answered one broadcast, how many times under each name, and what they consume."""

    answers: Counter[str]
    queues: Queues

    @property
    def duplicates(self) -> dict[str, int]:
        """Node names two or more workers answer as (on Redis both answer every broadcast)."""
        return {name: count for name, count in self.answers.items() if count > 1}


class Cluster:
    """A Celery cluster seen through remote control."""

    def __init__(self, app: Any, *, reply_timeout: float) -> None:
        self.app = app
        self.reply_timeout = reply_timeout
        self._connection: Any = None
        errors = transport_errors(app)
        # kombu wraps transport errors as OperationalError when it gives up retrying.
        self._errors: tuple[type[BaseException], ...] = (
            *errors.connection,
            OSError,
            OperationalError,
        )
        # A broker that answers but refuses the login (a wrong password: AMQP's 403, which
        # py-amqp raises as a channel error) is as far out of reach as one that is down.
        # Only while connecting: a channel error later is a failed call, not a lost broker.
        self._refusals = errors.channel
        self._counter: ConsumerCounter | None = None

    # -- connection ------------------------------------------------------------------

    @contextmanager
    def connected(self, *, retries: int = 2) -> Iterator[Cluster]:
        """Hold one broker connection for every call; fail fast if there is none."""
        conn = _bounded(self.app.connection_for_write())
        # Publish control messages on this connection, not through the app's producer pool:
        # the pool's connections would retry a lost broker without end (see _bounded).
        self.app.control.mailbox._producer_pool = None
        try:
            with self._broker_errors(connecting=True):
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
        with self._broker_errors(connecting=True):
            conn.close()
            conn.ensure_connection(max_retries=retries, interval_start=1, interval_step=1)

    @contextmanager
    def _broker_errors(self, *, connecting: bool = False) -> Iterator[None]:
        errors = self._errors + self._refusals if connecting else self._errors
        try:
            yield
        except errors as exc:
            raise BrokerUnavailable(
                f"cannot reach the broker at {broker_label(self.app)}: {exc}"
            ) from exc

    def _broadcast(
        self,
        command: str,
        workers: Iterable[str] | None = None,
        *,
        heard: Callable[[str, Any], None] | None = None,
        **arguments: Any,
    ) -> list[tuple[str, Any]]:
        """Send ``command`` and return every (hostname, reply), duplicates kept.

        Addressed to named workers, the call returns as soon as each has answered (a round
        trip); to all (``workers=None``), it waits the whole reply timeout: only discovery
        does that. ``heard`` is told of each reply as it arrives.
        """
        destination = sorted(workers) if workers is not None else None
        if destination == []:
            return []

        def each(answer: dict[str, Any]) -> None:
            for host, reply in answer.items():
                heard(host, reply)  # type: ignore[misc]  # only passed on when set

        with self._broker_errors():
            replies = self.app.control.broadcast(
                command,
                arguments=arguments,
                destination=destination,
                limit=len(destination) if destination else None,
                reply=True,
                timeout=self.reply_timeout,
                connection=self._connection,
                callback=each if heard else None,
            )
        return [(host, reply) for answer in replies or [] for host, reply in answer.items()]

    def _by_worker(
        self, command: str, workers: Iterable[str] | None = None, **arguments: Any
    ) -> dict[str, Any]:
        return dict(self._broadcast(command, workers, **arguments))

    # -- discovery ---------------------------------------------------------------------

    def discover(self, heard: Callable[[str, Any], None] | None = None) -> Discovery:
        """Every worker that answers, with its task consumers (one broadcast, one timeout).

        Celery does not list its control (``*.pidbox``) or event (``celeryev.*``) queues in
        ``active_queues``; they are filtered all the same, because cancelling them would cut
        the very channel the gate talks through.
        """
        replies = self._broadcast("active_queues", heard=heard)
        return Discovery(
            answers=Counter(host for host, _ in replies),
            queues={host: task_queues(declarations) for host, declarations in replies},
        )

    def queues(self, workers: Iterable[str]) -> Queues:
        """The named workers' task consumers with their full declarations."""
        return {
            host: task_queues(declarations)
            for host, declarations in self._by_worker("active_queues", workers).items()
        }

    # -- the broker's own count (consumers.py) ------------------------------------------

    @property
    def counter(self) -> ConsumerCounter:
        if self._counter is None:
            self._counter = broker_counter(self.app)
        return self._counter

    @property
    def counts(self) -> bool:
        """Whether the broker keeps a count of consumers (not the filesystem transport)."""
        return not isinstance(self.counter, NoCount)

    def count(
        self, queues: Iterable[str], asked: Iterable[str], heard: Iterable[str] = ()
    ) -> BrokerCount:
        """Consumers of ``queues`` and which workers are alive, as the broker says, whoever
        answers remote control (``heard``: those that did, asked about no further)."""
        with self._broker_errors():
            return self.counter.count(self._connection, queues, asked, heard)

    # -- drain and restore ------------------------------------------------------------

    def cancel(self, consumers: dict[str, set[str]]) -> None:
        """Ask each worker to stop consuming its named queues; they answer before they do it.

        One call per queue name, addressed to every worker that consumes it.
        """
        by_queue: dict[str, list[str]] = {}
        for worker, names in consumers.items():
            for name in names:
                by_queue.setdefault(name, []).append(worker)
        for name, workers in sorted(by_queue.items()):
            self._broadcast("cancel_consumer", workers, queue=name)

    def add(self, workers: list[str], declaration: dict[str, Any]) -> None:
        """Ask ``workers`` to consume a queue again, declared exactly as it was: one call for
        all of them (each call reaches every worker's mailbox, so one per worker would cost a
        fleet of a thousand a thousand calls)."""
        exchange = declaration.get("exchange") or {}
        options = {key: declaration[key] for key in _QUEUE_OPTIONS if key in declaration}
        options.update(
            queue_durable=declaration.get("durable"),
            queue_auto_delete=declaration.get("auto_delete"),
            exchange_durable=exchange.get("durable"),
            exchange_auto_delete=exchange.get("auto_delete"),
            exchange_arguments=exchange.get("arguments"),
        )
        self._broadcast(
            "add_consumer",
            workers,
            queue=declaration["name"],
            exchange=exchange.get("name"),
            exchange_type=exchange.get("type") or "direct",
            routing_key=declaration.get("routing_key"),
            **options,  # flat, as Control.add_consumer sends them
        )

    # -- the drain lease (taskmaster/tasks.py on the workers) ---------------------------

    def lease(self, workers: Iterable[str], *, run: int, seconds: float, gate: str) -> set[str]:
        """Give (or renew) the drain lease; return the workers that hold it.

        A worker without ``taskmaster.tasks`` answers with an error (an unknown command):
        it is drained all the same, without a lease.
        """
        replies = self._broadcast("taskmaster_lease", workers, run=run, seconds=seconds, gate=gate)
        return {host for host, reply in replies if _ok(reply)}

    def release(self, workers: Iterable[str], *, run: int | None) -> dict[str, list[str]]:
        """End the lease of ``run`` now: each worker consumes its leased queues again. Returns
        the queues each worker that held it gave back."""
        replies = self._broadcast("taskmaster_release", workers, run=run)
        return {host: list(reply.get("queues", [])) for host, reply in replies if _ok(reply)}

    def leases(self, workers: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """The lease each worker holds ({} for none); workers without the module are left out."""
        replies = self._broadcast("taskmaster_lease_status", workers)
        return {host: reply for host, reply in replies if _ok(reply)}

    # -- tasks -------------------------------------------------------------------------

    def look(
        self, workers: list[str], *, leased: set[str], run: int, seconds: float, gate: str
    ) -> tuple[Queues, Inspection]:
        """Each worker's consumers and tasks: one round trip for the workers that hold the
        lease (``taskmaster_look``, which renews it too), the usual four for the others.

        A worker counts as answering only if it answered every question put to it.
        """
        modern = [w for w in workers if w in leased]
        replies = self._by_worker("taskmaster_look", modern, run=run, seconds=seconds, gate=gate)
        looked = {host: reply for host, reply in replies.items() if _ok(reply)}
        queues = {host: task_queues(reply["queues"]) for host, reply in looked.items()}
        inspection = inspection_from_replies(
            active={h: r["active"] for h, r in looked.items()},
            reserved={h: r["reserved"] for h, r in looked.items()},
            scheduled={h: r["scheduled"] for h, r in looked.items()},
        )
        others = [w for w in workers if w not in leased]
        if others:
            old = self.queues(others)
            queues.update(old)
            inspection = inspection.merged(self._inspect([w for w in others if w in old]))
        return queues, inspection

    def inspect_tasks(self, workers: list[str]) -> Inspection:
        """Running, prefetched and ETA tasks of ``workers``: one round trip to the workers
        that run ``taskmaster.tasks`` (``taskmaster_look`` without a run touches no lease),
        the usual three for those that answer it with an error (an older image). A worker
        that does not answer is not asked again: it is silent either way."""
        replies = self._by_worker("taskmaster_look", workers)
        looked = {host: reply for host, reply in replies.items() if _ok(reply)}
        inspection = inspection_from_replies(
            active={h: r["active"] for h, r in looked.items()},
            reserved={h: r["reserved"] for h, r in looked.items()},
            scheduled={h: r["scheduled"] for h, r in looked.items()},
        )
        older = [w for w in workers if w in replies and w not in looked]
        return inspection.merged(self._inspect(older)) if older else inspection

    def _inspect(self, workers: list[str]) -> Inspection:
        """Celery's own three questions, for workers without ``taskmaster.tasks``."""
        return inspection_from_replies(
            active=self._by_worker("active", workers, safe=True),
            reserved=self._by_worker("reserved", workers, safe=True),
            scheduled=self._by_worker("scheduled", workers, safe=True),
        )

    def still_held(self, task_ids: dict[str, set[str]]) -> dict[str, set[str]]:
        """Which of these tasks each worker still holds (running, prefetched or, on Celery
        5.7, scheduled); a worker that does not answer is left out."""
        replies = self._by_worker(
            "query_task", task_ids, ids=sorted(set().union(*task_ids.values()))
        )
        return {
            host: set(found) & task_ids[host]
            for host, found in replies.items()
            if isinstance(found, dict)
        }


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


def _ok(reply: Any) -> bool:
    return isinstance(reply, dict) and "error" not in reply
