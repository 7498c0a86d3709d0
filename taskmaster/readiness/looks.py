"""The readiness page's looks at the workers: one dry run at a time, shared, within a budget.

Every open readiness page refreshes every few seconds, and each refresh wants to know what
the workers run now. A look is ``prepare_deploy --dry-run`` through the same entry point
(``api.prepare_deploy``): one broadcast, which waits a whole reply timeout, then a round
trip per question. Run per request, ten open pages would ask the broker ten times as often
as one. So a process runs one look at a time, in a thread, and every request reads the
latest: it waits for a look under way at most its budget, never longer. A broker that is
slow or down therefore costs each request the budget at most, and the page says so.

A look never cancels anything: it is a dry run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import connections

from taskmaster.api import prepare_deploy
from taskmaster.conf import app_settings, load_app
from taskmaster.drain.request import GateRequest
from taskmaster.drain.stop import StopRequest
from taskmaster.exits import GateError, GateFailed
from taskmaster.gate.outcome import Outcome
from taskmaster.gate.registry import load_registry
from taskmaster.gate.rules import Decision, Gate, Verdict
from taskmaster.readiness.page import Latest, Look

logger = logging.getLogger("taskmaster")

FRESH = 1.0  # seconds a finished look is reused: refreshes of many pages share it
REMEMBERED = 600.0  # seconds a worker seen earlier is missed when it stops answering


def budget() -> float:
    """How long a request waits for a look: the discovery broadcast (one reply timeout),
    a second one when nobody answered the first, and a second for the rest."""
    return 2 * float(app_settings.REPLY_TIMEOUT) + 1.0


class _Unheard:
    """The observer of a look: a dry run has nothing to say while it runs."""

    def note(self, text: str) -> None:
        pass

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        pass


def dry_run() -> Look:
    """``prepare_deploy --dry-run``, as the command runs it.

    ``allow_no_workers``: a page must not call "no worker answers" an error; the page says
    it in its own words, with the fleet earlier gates drained. So the look needs no database.
    """
    asked = time.time()
    try:
        request = GateRequest(dry_run=True, allow_no_workers=True)
        outcome = prepare_deploy(request, _Unheard(), StopRequest())
        try:
            registry = load_registry(load_app())
        except GateError:
            registry = {}  # the outcome says what is wrong; no forecast without it
    finally:
        connections.close_all()  # this thread's own, should anything have opened one
    return Look(outcome, asked, time.time(), registry)


class Looks:
    """One look under way at a time; every request reads the latest."""

    def __init__(self, look: Callable[[], Look] = dry_run, *, fresh: float = FRESH) -> None:
        self._look = look
        self._fresh = fresh
        self._lock = threading.Lock()
        self._last: Look | None = None
        self._last_done = 0.0  # time.monotonic() when it ended
        self._pending: tuple[threading.Event, float, float] | None = None  # event, mono, wall
        self._seen: dict[str, float] = {}  # hostname -> when a look last heard it

    def latest(self, *, budget: float) -> Latest:
        """The latest look, after waiting for one under way until ``budget`` after it began."""
        with self._lock:
            if self._last is None or time.monotonic() - self._last_done >= self._fresh:
                self._start()
            pending = self._pending
        if pending is not None:
            event, began, _ = pending
            event.wait(max(0.0, began + budget - time.monotonic()))
        with self._lock:
            # Still pending after the wait: it has run its whole budget, it is overdue.
            overdue = self._pending[2] if self._pending is not None else None
            return Latest(self._last, overdue, self._missing())

    def forget(self) -> None:
        """Drop what earlier looks saw, and a look under way (tests: a new broker)."""
        with self._lock:
            self._last, self._seen, self._pending = None, {}, None

    def _start(self) -> None:
        if self._pending is not None:
            return  # one look at a time: a broker that hangs costs one thread, not many
        event = threading.Event()
        self._pending = (event, time.monotonic(), time.time())
        threading.Thread(
            target=self._run, args=(self._pending,), name="taskmaster-look", daemon=True
        ).start()

    def _run(self, pending: tuple[threading.Event, float, float]) -> None:
        try:
            look = self._look()
        except Exception as exc:  # a bug: the page must say it, not wait for ever
            logger.exception("the readiness page's look at the workers failed")
            look = _failed(exc)
        with self._lock:
            if self._pending is pending:  # not forgotten meanwhile
                self._last, self._last_done, self._pending = look, time.monotonic(), None
                for worker in look.outcome.workers:
                    self._seen[worker.hostname] = look.answered_at
        pending[0].set()

    def _missing(self) -> dict[str, float]:
        if self._last is None or self._last.outcome.failure is not None:
            return {}
        heard = {w.hostname for w in self._last.outcome.workers}
        since = self._last.answered_at - REMEMBERED
        return {w: at for w, at in sorted(self._seen.items()) if w not in heard and at >= since}


def _failed(exc: Exception) -> Look:
    now = time.time()
    outcome = Outcome(
        verdict=Verdict.ERROR,
        started_at=datetime.fromtimestamp(now, UTC),
        timeout=0.0,
        interval=0.0,
        hold=0.0,
        dry_run=True,
        failure=GateFailed(f"the look at the workers failed: {exc!r}"),
    )
    return Look(outcome, now, now)


looks = Looks()  # the process's one, shared by every request
