"""Restore a drain: end the workers' lease, put back every recorded consumer on its own
worker, and verify it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from taskmaster.cluster.control import Cluster
from taskmaster.gate.inspection import Queues, queue_names

RESTORE_ATTEMPTS = 5

# A worker without taskmaster.tasks is restored by Celery's add_consumer, which before Celery
# 5.7 does not select a queue the worker knows already: it consumes it until its next broker
# reconnect, and then no more (tests/integration/test_restore_reconnect.py).
FORGETS = (
    " (by add_consumer: it has no taskmaster.tasks, and on Celery before 5.7 it forgets these "
    "queues at its next broker reconnect, celery/celery#7733: restart it, or install Taskmaster "
    "where it runs)"
)


def restore_consumers(
    cluster: Cluster,
    snapshot: Queues,
    *,
    run: int | None,
    skip: set[str] | frozenset[str] = frozenset(),
    missing_ok: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    note: Callable[[str], None] = lambda text: None,
) -> list[str]:
    """Put back every recorded consumer on its own worker and verify it; list what is not.

    The lease of ``run`` is released first: a worker that holds it consumes its leased
    queues again by itself (those of an earlier drain it still held too); then every
    recorded queue missing on a worker is added with its full declaration, and verified.
    ``skip``: workers known to be gone (they shut down cleanly; a restart restores them).
    ``missing_ok``: a worker that does not answer is said, not counted as a problem (the
    operator knows it is gone for good).
    """
    workers = sorted(w for w, queues in snapshot.items() if queues and w not in skip)
    released = cluster.release(sorted(w for w in snapshot if w not in skip), run=run)
    for worker in sorted(w for w, queues in snapshot.items() if not queues and w not in skip):
        # Drained already when the gate began (an earlier clear still held, a gate on
        # another database): there is nothing of its own to put back.
        given = ", ".join(released.get(worker, [])) or "nothing"
        note(
            f"{worker}: no queues recorded (drained already when the gate began); its lease "
            f"gave back {given}"
        )
    missing: dict[str, list[dict[str, Any]]] = {}
    unanswered: list[str] = workers
    told: set[str] = set()  # each worker's restore is said once, however many tries it takes
    for attempt in range(RESTORE_ATTEMPTS + 1):
        current = cluster.queues(workers) if workers else {}
        unanswered = [w for w in workers if w not in current]
        missing = {}
        for w in workers:
            if w in current:
                absent = [q for q in snapshot[w] if q["name"] not in queue_names(current[w])]
                if absent:
                    missing[w] = absent
        if not missing and not unanswered:
            return []
        if attempt == RESTORE_ATTEMPTS:
            break
        for worker, declarations in sorted(missing.items()):
            if worker not in told:
                told.add(worker)
                names = ", ".join(q["name"] for q in declarations)
                note(f"restoring {worker}: {names}" + ("" if worker in released else FORGETS))
        for declaration, to in by_declaration(missing):
            cluster.add(to, declaration)
        sleep(0.2 * (attempt + 1))
    problems = [
        f"{w} does not consume {', '.join(q['name'] for q in qs)} after {RESTORE_ATTEMPTS} tries"
        for w, qs in sorted(missing.items())
    ]
    silent = [
        f"{w} does not answer: it may still be drained "
        f"(recorded: {', '.join(sorted(queue_names(snapshot[w])))})"
        for w in unanswered
    ]
    if missing_ok:
        for sentence in silent:
            note(f"ignored: {sentence}")
        return problems
    return problems + silent


def by_declaration(
    missing: dict[str, list[dict[str, Any]]],
) -> list[tuple[dict[str, Any], list[str]]]:
    """Each missing declaration once, with the workers it is missing on: a fleet that
    consumes the same queues is restored in one call per queue."""
    grouped: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for worker, declarations in sorted(missing.items()):
        for declaration in declarations:
            key = json.dumps(declaration, sort_keys=True, default=str)
            grouped.setdefault(key, (declaration, []))[1].append(worker)
    return list(grouped.values())
