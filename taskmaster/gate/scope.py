"""Which workers a gate drains: all of them, or those a selective drain names.

A rolling or blue/green deploy drains one pool at a time, and a Kubernetes pod's ``preStop``
hook drains its own worker only: ``--worker "*@$HOSTNAME"`` (shell-style patterns on the
node name) and ``--queue NAME`` (workers that consume it). Given both, a worker must match
both; given several of one kind, any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class Scope:
    workers: tuple[str, ...] = ()  # shell-style patterns on node names
    queues: tuple[str, ...] = ()  # queue names

    def __bool__(self) -> bool:
        return bool(self.workers or self.queues)

    def admits(self, worker: str, queues: Iterable[str] | None) -> bool:
        """Whether the scope takes this worker; ``queues=None``: not known (a worker that does
        not answer), so it may consume any of the scope's queues."""
        if self.workers and not any(fnmatchcase(worker, p) for p in self.workers):
            return False
        return not self.queues or queues is None or bool(set(self.queues) & set(queues))

    def describe(self) -> str:
        parts = [f"--worker {p!r}" for p in self.workers] + [f"--queue {q!r}" for q in self.queues]
        return " ".join(parts) or "every worker"

    def as_json(self) -> dict[str, Any]:
        return {"workers": list(self.workers), "queues": list(self.queues)} if self else {}
