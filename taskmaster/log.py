"""The ``taskmaster`` logger's records name the gate run they belong to (``record.run_id``).

A log pipeline joins lines to a run with it (``%(run_id)s`` in a format, a field in a JSON
formatter): set while a gate runs, a resume restores a run, or a signal's receivers hear of
one; ``None`` outside a run. The logger, its levels and its messages stay as they were.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import Any

LOGGER = "taskmaster"

current_run: ContextVar[int | None] = ContextVar("taskmaster_run_id", default=None)


class RunId(logging.Filter):
    """Gives every record of the ``taskmaster`` logger the run id of its context."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):  # a caller's extra={"run_id": ...} wins
            record.run_id = current_run.get()
        return True


def install() -> None:
    """Add the filter to the ``taskmaster`` logger, once (the app's ``ready()``)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, RunId) for f in logger.filters):
        logger.addFilter(RunId())


@contextmanager
def run_scope(run_id: int | None = None) -> Iterator[None]:
    """Records logged inside carry ``run_id`` (or the one ``set_run`` gives later), and the
    context's earlier run id comes back after."""
    token = current_run.set(run_id)
    try:
        yield
    finally:
        current_run.reset(token)


def set_run(run_id: int | None) -> None:
    """The run the rest of the current ``run_scope`` belongs to (once the gate has opened it)."""
    current_run.set(run_id)


def thread(target: Callable[..., Any], *args: Any, name: str) -> threading.Thread:
    """A daemon thread whose records name the run of the code that made it: a new thread
    starts with an empty context, so it would log as outside any run."""
    return threading.Thread(target=copy_context().run, args=(target, *args), name=name, daemon=True)
