"""What the commands share: streams that cannot fail, stop signals, option types, logging."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import math
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand

from taskmaster.drain.stop import StopRequest
from taskmaster.output.streams import SafeStream, safe

# The signals that stop a gate and restore its workers: a terminal closed or an SSH session
# dropped (SIGHUP), Ctrl-C (SIGINT), a supervisor or a CI runner cancelling (SIGTERM).
# SIGKILL cannot be caught: the workers' lease covers it.
STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{value!r} must be a finite number of seconds above 0")
    return seconds


@contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """Turn the stop signals into a request the gate honours between steps."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def failures_logged_to(stream: SafeStream) -> Iterator[None]:
    """Send taskmaster's ERROR logs (an unexpected failure's traceback) to ``stream``, unless
    the project's logging already takes care of the ``taskmaster`` logger."""
    logger = logging.getLogger("taskmaster")
    if logger.hasHandlers():
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.ERROR)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class SafeCommand(BaseCommand):
    """A command whose output can never raise: a closed pipe or a lost terminal is not an
    error of the command (``streams.py``), and Django's own error path writes safely too."""

    requires_system_checks: list[str] = []  # a deploy step must not fail on unrelated warnings

    def __init__(
        self,
        stdout: Any = None,
        stderr: Any = None,
        no_color: bool = False,
        force_color: bool = False,
    ) -> None:
        # Django would take a None for "use sys.stdout": pass on only what was given.
        out, err = (
            safe(stdout if stdout is not None else sys.stdout),
            safe(stderr if stderr is not None else sys.stderr),
        )
        super().__init__(out, err, no_color, force_color)  # type: ignore[arg-type]

    def run_from_argv(self, argv: list[str]) -> None:
        # Run from the command line, the command is the whole process, and a deploy step
        # waits for it to exit. Python's exit collects every object Django and Celery made
        # (a tenth of a second here); frozen, they are freed without the collector's passes.
        # At exit, so nothing that calls the command in-process keeps a frozen heap.
        atexit.register(gc.freeze)
        super().run_from_argv(argv)

    def raw(self, wrapper: Any) -> SafeStream:
        """The stream under Django's OutputWrapper (which adds a newline to every write)."""
        return safe(wrapper._out)
