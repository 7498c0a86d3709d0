"""The fleet as the broker sees it, beside the workers' answers: who is silent.

At each full poll (and once before a gate or a dry run decides anything) the gate asks the
broker who consumes the queues that matter and which workers it knows by name are alive
(``consumers.py``), and sets that against the workers that answered (``silent.py``). The
roster (``records.known_workers``) is the fleet earlier gates heard: a worker in it that
stops answering is asked about by name, and one the broker says is gone drops out of it.
"""

from __future__ import annotations

import logging
from typing import Any

from taskmaster.cluster.control import Cluster
from taskmaster.drain import records
from taskmaster.exits import BrokerUnavailable
from taskmaster.gate.inspection import BrokerCount, is_control_queue, queue_names
from taskmaster.gate.registry import Registry
from taskmaster.gate.rules import Gate, worker_blocker
from taskmaster.gate.silent import SILENT, Silence, silent_blockers
from taskmaster.humanize import some

logger = logging.getLogger("taskmaster")


def app_queues(app: Any, registry: Registry) -> set[str]:
    """The queues the app declares, routes its tasks to, or sends to by default."""
    names = {str(app.conf.task_default_queue)}
    names.update(str(name) for name in app.amqp.queues)
    names.update(info.queue for info in registry.values() if info.queue)
    return {n for n in names if not is_control_queue(n)}


class Fleet:
    """What one gate (or dry run) knows of the fleet, poll after poll."""

    def __init__(
        self,
        cluster: Cluster,
        gate: Gate,
        *,
        declared: set[str],
        known: dict[str, set[str]] | None = None,
        remember: bool = True,
    ) -> None:
        self.cluster = cluster
        self.gate = gate
        self.declared = declared  # app_queues()
        self.known = dict(known or {})  # the roster: hostname -> last known queues
        self.remember = remember  # a dry run changes nothing, the roster included
        self.count = BrokerCount(method="", note="not counted yet")
        self.heard: dict[str, set[str]] = {}
        self.silent: tuple[str, ...] = ()
        # Workers of others that did not answer the last look: not asked again (each would
        # cost a poll a whole reply timeout) until a discovery hears them.
        self.unheard: set[str] = set()

    def look(self, heard: dict[str, set[str]]) -> Silence:
        """The silent blockers now, given the workers that answered this look.

        Workers the gate knows but did not ask (out of its scope, held by another drain) are
        asked what they consume first: only a fresh answer accounts for a consumer.
        """
        heard = dict(heard)
        if not self.cluster.counts:
            self.count, self.heard = self.cluster.count((), ()), heard
            return Silence((), ())
        others = sorted((self.gate.out_of_scope | self.gate.elsewhere) - set(heard) - self.unheard)
        if others:
            answers = self.cluster.queues(others)
            heard.update({w: queue_names(q) for w, q in answers.items()})
            self.unheard |= set(others) - set(answers)
        asked = (set(self.known) | set(others)) - set(heard)
        relevant = self.relevant(heard)
        self.heard = heard
        try:
            self.count = self.cluster.count(relevant, asked, heard)
        except BrokerUnavailable:
            raise  # the run reconnects
        except Exception as exc:  # a bug, or an answer no broker should give: never "safe"
            logger.exception("the broker's count failed")
            why = f"the broker could not be asked who else is there ({exc!r})"
            self.count = BrokerCount(method="", note=why)
            self.silent = ("the broker's count",)
            reason = f"{why}: a worker that cannot answer may be running a task"
            return Silence((worker_blocker("the broker's count", SILENT, reason),), ())
        if not self.gate.scope.queues:  # the broker may know queues the gate did not
            relevant |= set(self.count.consumers)
        gone = self.count.absent & set(self.known)
        if gone:
            for worker in gone:
                del self.known[worker]
            if self.remember:
                records.forget_workers(gone)
        silence = silent_blockers(
            self.count,
            heard,
            drained=set(self.gate.workers),
            elsewhere=self.gate.elsewhere,
            scope=self.gate.scope,
            relevant=relevant,
            known=self.known,
        )
        self.gate.out_of_scope |= set(silence.out_of_scope)
        self.silent = tuple(sorted(b.worker for b in silence.blockers))
        return silence

    def relevant(self, heard: dict[str, set[str]]) -> set[str]:
        """The queues whose consumers matter: a ``--queue`` drain's own; otherwise every
        queue the app declares, this gate drained, or a worker consumes or consumed."""
        if self.gate.scope.queues:
            return set(self.gate.scope.queues)
        names = set(self.declared)
        for declarations in self.gate.snapshot.values():
            names |= queue_names(declarations)
        for queues in [*heard.values(), *self.known.values()]:
            names |= queues
        return {n for n in names if not is_control_queue(n)}

    def heard_from(self, queues: dict[str, list[dict[str, Any]]]) -> None:
        """Workers a discovery heard: the roster keeps them (a real gate only)."""
        self.unheard -= set(queues)
        for worker, declarations in queues.items():
            if declarations:
                self.known[worker] = queue_names(declarations)
            else:
                self.known.setdefault(worker, set())
        if self.remember and queues:
            records.remember_workers(queues)

    def summary(self) -> str:
        """One sentence: who answered, what the broker counts, who is silent."""
        count = self.count
        if not count.available:
            return count.note
        said = [f"{len(self.heard):,} worker(s) answered"]
        if count.consumers:
            busy = {q: n for q, n in sorted(count.consumers.items()) if n}
            counted = ", ".join(f"{n:,} on {q}" for q, n in busy.items())
            said.append(
                f"the broker counts consumers: {counted}"
                if busy
                else f"the broker counts no consumer on {len(count.consumers):,} queue(s)"
            )
        if count.listeners is not None:
            said.append(f"{count.listeners:,} connection(s) listen to remote control")
        if self.silent:
            said.append(f"silent: {some(self.silent)}")
        text = "; ".join(said) + f" ({count.method})"
        return f"{text}; {count.note}" if count.note else text

    def as_json(self) -> dict[str, Any]:
        """The report's ``broker_count``: what the broker counted beside who answered."""
        count = self.count
        return {
            "method": count.method or None,
            "answered": len(self.heard),
            "consumers": dict(sorted(count.consumers.items())),
            "listeners": count.listeners,
            "alive": sorted(count.alive),
            "silent": list(self.silent),
            "note": count.note,
            "summary": self.summary(),
        }
