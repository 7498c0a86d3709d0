"""Runs one gate: lock, record, discover, cancel and verify, poll, verdict, restore and verify.

This is where the gate (which decides), the cluster (which asks Celery) and the records
(which remember) meet. It prints nothing: it tells an observer (``report.py``) what it
sees. A stop request (SIGINT/SIGTERM, set by the command) is honoured between steps, so a
restore is never cut in half.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from taskmaster import records
from taskmaster.cluster import BrokerUnavailable, Cluster, Inspection, queue_names
from taskmaster.events import EventWatch
from taskmaster.gate import Blocker, Decision, Gate, Verdict
from taskmaster.models import GateRun
from taskmaster.restore import restore

CANCEL_ATTEMPTS = 5


class DuplicateWorkers(Exception):
    """Two workers answer under one node name: a configuration error, found before any cancel."""


class Observer(Protocol):
    def note(self, text: str) -> None: ...

    def polled(self, gate: Gate, decision: Decision, now: float) -> None: ...


@dataclass
class StopRequest:
    """Set by a signal handler; read by the drain between steps."""

    signum: int | None = None

    def __call__(self, signum: int, frame: Any = None) -> None:
        if self.signum is None:  # a second Ctrl-C must not cut the restore short
            self.signum = signum


@dataclass
class Outcome:
    verdict: Verdict
    run: GateRun
    gate: Gate
    blockers: tuple[Blocker, ...]
    restore_problems: list[str] | None  # None: no restore was due (clear)
    signum: int | None = None
    notes: list[str] = field(default_factory=list)
    configuration_error: bool = False

    @property
    def exit_code(self) -> int:
        if self.configuration_error:
            return 2
        if self.restore_problems:
            return 5
        if self.verdict is Verdict.CLEAR:
            return 0
        if self.verdict is Verdict.INTERRUPTED:
            return 128 + (self.signum or signal.SIGINT)
        if self.verdict is Verdict.ERROR:
            return 3  # the broker was lost (or the gate failed) mid-drain; consumers restored
        return 1

    def as_json(self, *, with_args: bool = False) -> dict[str, Any]:
        """The report of DESIGN.md's command contract (keys may be added, never changed)."""
        run = self.run
        finished = run.finished_at or datetime.now(timezone.utc)
        return {
            "verdict": str(self.verdict),
            "exit_code": self.exit_code,
            "run_id": run.pk,
            "started_at": run.started_at.isoformat(),
            "finished_at": finished.isoformat(),
            "timeout": run.timeout,
            "interval": run.interval,
            "broker": run.broker,
            "workers": [
                {"hostname": worker, "queues": sorted(queue_names(queues))}
                for worker, queues in sorted(self.gate.snapshot.items())
            ],
            "blockers": [b.as_json(with_args=with_args) for b in self.blockers],
            "gone": sorted(self.gate.gone),
            "restored": None if self.restore_problems is None else not self.restore_problems,
            "restore_problems": self.restore_problems or [],
            "notes": self.notes,
        }


class Drain:
    def __init__(
        self,
        cluster: Cluster,
        gate: Gate,
        run: GateRun,
        observer: Observer,
        stop: StopRequest,
        *,
        events: EventWatch | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.gate = gate
        self.run = run
        self.observer = observer
        self.stop = stop
        self.events = events
        self.clock = clock
        self.sleep = sleep
        self.notes: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.observer.note(text)

    # -- the gate, step by step -----------------------------------------------------

    def execute(self) -> Outcome:
        decision = Decision(None, (), 0)
        try:
            while not self.stop.signum:
                decision = self.poll_or_reconnect(decision)
                if decision.verdict is not None:
                    break
                self.wait(decision.wait_seconds)
        except BrokerUnavailable as exc:
            self.note(f"the broker stayed away past the deadline: {exc}")
            return self.finish(Verdict.ERROR, decision.blockers)
        except DuplicateWorkers as exc:
            self.note(f"configuration error: {exc}; nothing was touched")
            return self.finish(Verdict.ERROR, (), configuration_error=True)
        except Exception as exc:  # restore before anything else; the record keeps the rest
            self.note(f"the gate failed: {exc!r}; restoring consumers")
            return self.finish(Verdict.ERROR, decision.blockers)
        if self.stop.signum:
            self.note(f"stopped by {signal.Signals(self.stop.signum).name}: restoring consumers")
            return self.finish(Verdict.INTERRUPTED, decision.blockers)
        assert decision.verdict is not None
        return self.finish(decision.verdict, decision.blockers)

    def poll_or_reconnect(self, last: Decision) -> Decision:
        try:
            return self.poll()
        except BrokerUnavailable as exc:
            self.note(f"lost the broker ({exc}); reconnecting")
            self.reconnect()
            # Poll again at once: the next poll re-verifies who consumes what.
            return Decision(None, last.blockers, 0)

    def reconnect(self) -> None:
        """Reconnect with backoff until the deadline (raises BrokerUnavailable after it)."""
        delay = 1.0
        while not self.stop.signum:
            try:
                self.cluster.reconnect(retries=0)
            except BrokerUnavailable:
                left = self.gate.deadline - self.clock()
                if left <= 0:
                    raise
                self.wait(min(delay, left))  # the last try falls on the deadline itself
                delay = min(delay * 2, 10.0)
            else:
                self.note("broker back: verifying every worker's consumers")
                return

    def discover(self) -> None:
        """Find workers not seen yet, record their consumers, then drain them."""
        live = self._ping()
        queues = self.cluster.queues(sorted(live)) if live else {}
        joined = self.gate.record(queues)
        if not joined:
            return
        # The record comes before the first cancel: a killed gate leaves what a restore needs.
        records.save_snapshot(self.run, self.gate.snapshot)
        for worker, declarations in sorted(joined.items()):
            if declarations:
                names = ", ".join(sorted(queue_names(declarations)))
                self.note(f"draining {worker} (consumes {names})")
            else:  # nothing to record, so nothing a restore could put back
                self.note(
                    f"{worker} consumes no queues: drained already (an earlier gate, a gate on "
                    "another database)? ./manage.py resume_consumers restores an earlier drain"
                )
        self.cancel({w: queue_names(q) for w, q in joined.items()})

    def _ping(self) -> set[str]:
        answered = self.cluster.ping()
        if not answered and not self.gate.snapshot:
            answered = self.cluster.ping()  # one retry: a reply can be late on a busy broker
            if not answered:
                self.note("no worker answered: nothing to drain (is the broker URL right?)")
        duplicates = {name for name, count in answered.items() if count > 1}
        if duplicates and not self.gate.snapshot:
            raise DuplicateWorkers(
                ", ".join(f"{answered[n]} workers answer as {n}" for n in sorted(duplicates))
                + " (give each worker a unique -n node name)"
            )
        for name in sorted(duplicates - self.gate.duplicates):
            self.note(f"configuration error: {answered[name]} workers now answer as {name}")
        self.gate.duplicates = duplicates
        return set(answered)

    def cancel(self, workers: dict[str, set[str]]) -> dict[str, set[str]]:
        """Cancel these consumers; Celery answers first, so verify and retry.

        Returns what is still consumed after the last try (the gate counts it a blocker).
        """
        left = {w: names for w, names in workers.items() if names}
        for attempt in range(CANCEL_ATTEMPTS):
            if not left:
                break
            for worker, names in sorted(left.items()):
                for name in sorted(names):
                    self.cluster.cancel(worker, name)
            self.sleep(0.1 * (attempt + 1))
            current = self.cluster.queues(sorted(left))
            left = {
                w: still
                for w, names in left.items()
                if (still := names & queue_names(current.get(w, [])))
            }
        return left

    def poll(self) -> Decision:
        started = self.clock()
        self.discover()
        workers = self.gate.workers
        consuming: dict[str, set[str]] = {}
        inspection = Inspection(answered=frozenset(), tasks=())
        if workers:
            current = self.cluster.queues(workers)
            # A consumer can come back (a worker restarted, an add_consumer by hand).
            consuming = self.cancel(self.gate.still_consuming(current))
            # Ask only the workers that just answered: a silent one would cost a reply
            # timeout per call, and it is a blocker either way.
            answering = [w for w in workers if w in current]
            if answering:
                inspection = self.cluster.inspect_tasks(answering)
            if not inspection.answered:
                # Nobody answers: our own connection may be the one that is broken.
                self.cluster.reconnect(retries=0)
            self.notice_departures(inspection)
        now = self.clock()
        decision = self.gate.decide(inspection, consuming, now=now)
        records.record_blockers(self.run, decision.blockers, at=_utc(now))
        self.observer.polled(self.gate, decision, now)
        # The interval runs from the start of one poll to the start of the next.
        wait = max(0.0, decision.wait_seconds - (now - started))
        return Decision(decision.verdict, decision.blockers, wait)

    def notice_departures(self, inspection: Inspection) -> None:
        offline = self.events.offline if self.events else set()
        for worker in self.gate.workers:
            if worker not in inspection.answered and worker in offline:
                self.gate.leave(worker)
                self.note(f"{worker} shut down cleanly (worker-offline): not a blocker")

    def wait(self, seconds: float) -> None:
        """Sleep until the next poll; a task ending or a worker leaving wakes it early."""
        if self.events:
            self.events.activity.clear()
        end = self.clock() + seconds
        while not self.stop.signum and (left := end - self.clock()) > 0:
            if self.events and self.events.activity.is_set():
                return
            self.sleep(min(0.1, left))

    # -- verdict ----------------------------------------------------------------------

    def finish(
        self, verdict: Verdict, blockers: tuple[Blocker, ...], *, configuration_error: bool = False
    ) -> Outcome:
        problems = None if verdict is Verdict.CLEAR else self.restore()
        outcome = Outcome(
            configuration_error=configuration_error,
            verdict=verdict,
            run=self.run,
            gate=self.gate,
            blockers=blockers,
            restore_problems=problems,
            signum=self.stop.signum,
            notes=self.notes,
        )
        records.close_run(
            self.run,
            verdict=verdict,
            final_blockers=blockers,
            restore_problems=problems,
            report=outcome.as_json(),
        )
        return outcome

    def restore(self) -> list[str]:
        try:
            return restore(
                self.cluster,
                self.gate.snapshot,
                skip=self.gate.gone,
                sleep=self.sleep,
                note=self.note,
            )
        except BrokerUnavailable as exc:
            return [f"{exc}; every recorded worker may still be drained: " + _who(self.gate)]


def _who(gate: Gate) -> str:
    return ", ".join(sorted(gate.snapshot)) or "none"


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)
