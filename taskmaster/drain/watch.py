"""Between two full polls: watching only what the gate waits for.

A full poll asks every drained worker for every task it holds, and discovery waits a whole
reply timeout; doing that every second would load a big fleet for nothing. Between polls the
gate asks only the workers that hold its blockers, and only about those tasks
(``query_task``, addressed, so each call is a round trip), and checks them off as the
workers stop holding them. When none is left, the next full poll comes at once: a verdict
within a second of the last blocker ending, with task events on or off.
"""

from __future__ import annotations

from collections.abc import Iterable

from taskmaster.cluster.control import Cluster
from taskmaster.gate.rules import Blocker

ASK_AT_ONCE = 50  # task ids per question: a few answer whether any is still held


class Watch:
    """The task blockers of the last poll, checked off as their workers let them go."""

    def __init__(self, blockers: Iterable[Blocker], *, now: float) -> None:
        blockers = list(blockers)
        self.nothing = not blockers  # nothing to wait for: no reason to poll early either
        # A worker that blocks as a whole (silent, still consuming, a duplicate) cannot be
        # watched this way: the full poll decides about it.
        self.blind = any(not b.name for b in blockers)
        # An ETA task cannot end before it is due (and Celery before 5.7 does not list it
        # for query_task): until then it is simply still there.
        self.due = max((b.eta for b in blockers if b.eta is not None and b.eta > now), default=0)
        self.held: dict[str, list[str]] = {}
        for b in blockers:
            if b.name:
                self.held.setdefault(b.worker, []).append(b.id)

    def over(self, cluster: Cluster, *, now: float) -> bool:
        """Whether every blocker of the last poll has gone (then poll at once).

        Asks about a few tasks at a time and stops at the first still held: while many are
        held, a round is one small question.
        """
        if self.nothing or self.blind or now < self.due:
            return False
        while self.held:
            question = {w: set(ids[:ASK_AT_ONCE]) for w, ids in self.held.items()}
            answer = cluster.still_held(question)
            if set(answer) != set(question):
                return False  # a worker did not answer: the full poll will see to it
            for worker, asked in question.items():
                gone = asked - answer[worker]
                self.held[worker] = [i for i in self.held[worker] if i not in gone]
                if not self.held[worker]:
                    del self.held[worker]
            if any(answer.values()):
                return False
        return True
