"""Workers' replies about their tasks, turned into plain data.

``inspect().active``, ``reserved`` and ``scheduled`` each answer in a shape of their own
(scheduled entries wrap the request with its ETA; active and reserved carry argument reprs
the client made, scheduled the values); the gate reads one shape, ``TaskSeen``.
"""

from __future__ import annotations

import reprlib
from datetime import datetime
from typing import Any

from taskmaster.gate.inspection import Inspection, TaskSeen

_args_repr = reprlib.Repr()
_args_repr.maxstring = 40
_args_repr.maxother = 40
_args_repr.maxlevel = 2
ARGUMENTS_LIMIT = 80  # characters of args and of kwargs each, when the settings show them


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


def _task(worker: str, state: str, info: dict[str, Any], eta: str | None = None) -> TaskSeen:
    return TaskSeen(
        id=str(info.get("id")),
        name=str(info.get("name")),
        worker=worker,
        state=state,
        acknowledged=bool(info.get("acknowledged")),
        time_start=info.get("time_start") if state == "active" else None,
        eta=datetime.fromisoformat(eta) if eta else None,
        args=_arguments(info.get("args"), info.get("kwargs")),
    )


def _arguments(args: Any, kwargs: Any) -> str:
    """A task's arguments as one bounded text, each shown once.

    ``active`` and ``reserved`` replies carry the reprs the client made (``argsrepr``,
    strings); ``scheduled`` replies carry the values themselves.
    """
    parts = []
    for value, empty in ((args, ("()", "[]")), (kwargs, ("{}",))):
        text = value if isinstance(value, str) else _args_repr.repr(value)
        if value is None or text in empty:
            continue
        parts.append(text if len(text) <= ARGUMENTS_LIMIT else text[: ARGUMENTS_LIMIT - 1] + "…")
    return " ".join(parts)
