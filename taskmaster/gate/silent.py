"""Who is alive at the broker but silent: the broker's count against the workers' answers.

Pure rules over what ``consumers.py`` counted and which workers answered this look. A worker
the broker shows alive that did not answer is a blocker: it may be running anything, and a
gate cannot drain what it cannot ask. What the broker counts but cannot name (a consumer of a
queue, a connection listening to remote control) is a blocker too, once everything that
answered or has a name is taken off the count. Nothing here says "safe" about a consumer it
has not accounted for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from taskmaster.gate.inspection import BrokerCount
from taskmaster.gate.rules import Blocker, worker_blocker
from taskmaster.gate.scope import Scope

SILENT = "silent"
WHY = "(a busy solo or gevent pool, or remote control off); it may be running anything"
UNSURE = "; it may be in this drain's scope (the broker gives no name)"


@dataclass(frozen=True)
class Silence:
    blockers: tuple[Blocker, ...]
    out_of_scope: tuple[str, ...]  # silent workers a selective drain leaves alone, by name


def silent_blockers(
    count: BrokerCount,
    heard: Mapping[str, set[str]],
    *,
    drained: set[str],
    elsewhere: set[str],
    scope: Scope,
    relevant: set[str],
    known: Mapping[str, set[str]],
) -> Silence:
    """The silent workers of one look.

    ``heard``: every worker that answered it, with the task queues it consumes now;
    ``drained``: this gate's workers (one that stops answering is already a blocker);
    ``elsewhere``: workers another drain holds; ``relevant``: the queues whose consumers
    matter to this gate; ``known``: the queues each named worker was last seen consuming.
    """
    unheard = {w: s for w, s in count.alive.items() if w not in heard}
    blockers: list[Blocker] = []
    outside: list[str] = []
    # Consumers with a name, per queue: those that answered, and the named silent ones. A
    # silent worker in scope is a blocker whatever it consumes, so its last known queues
    # may stand for it; one out of scope only where the broker lists its consumers.
    named: dict[str, set[str]] = {w: set(q) for w, q in heard.items()}
    for worker, live in sorted(unheard.items()):
        if worker in drained or worker in elsewhere:
            continue
        queues = live.queues if live.queues is not None else known.get(worker)
        if scope.admits(worker, queues):
            reason = f"alive at the broker ({live.evidence}) but answers nothing {WHY}"
            blockers.append(worker_blocker(worker, SILENT, reason))
            # Its queues unknown, it may stand for one consumer of each: it blocks anyway.
            named[worker] = set(queues) if queues is not None else set(relevant)
        else:
            outside.append(worker)
            named[worker] = set(live.queues or ())
    # Without a name, scope cannot be told: on a selective drain it counts as in scope.
    by_name = UNSURE if scope.workers else ""
    for queue in sorted(relevant & set(count.consumers)):
        accounted = sum(1 for queues in named.values() if queue in queues)
        accounted += sum(1 for s in count.unnamed if queue in s.queues)
        if (left := count.consumers[queue] - accounted) > 0:
            blockers.append(
                worker_blocker(
                    f"unnamed consumer of {queue}",
                    SILENT,
                    f"{left} consumer(s) of {queue} at the broker that no worker answered "
                    f"for {WHY}{by_name}",
                )
            )
    for consumer in count.unnamed:
        if consumer.queues & relevant:
            blockers.append(
                worker_blocker(
                    f"unnamed worker at {consumer.peer}",
                    SILENT,
                    f"consumes {', '.join(sorted(consumer.queues))} at the broker but names no "
                    f"node and answers nothing {WHY}{by_name}",
                )
            )
    if count.listeners is not None:
        # Each worker that answered listens once; so do the named silent ones that listen,
        # and this gate's own workers that stopped answering (blockers already).
        listening = len(heard) + sum(1 for s in unheard.values() if s.listens)
        listening += len(drained - set(heard) - set(unheard))
        if (left := count.listeners - listening) > 0:
            blockers.append(
                worker_blocker(
                    "unnamed worker listening to remote control",
                    SILENT,
                    f"{left} connection(s) listen to remote control but no worker answered "
                    f"for them {WHY}{UNSURE if scope else ''}",
                )
            )
    return Silence(tuple(blockers), tuple(outside))
