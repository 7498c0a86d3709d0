"""Runs one gate: drain, poll and watch, verdict, then hold the drain or restore it.

This is where the rules (which decide), the cluster (which asks Celery and the broker) and
the records (which remember) meet. It prints nothing: it tells an observer (``output/``)
what it sees, and an observer that fails is logged and dropped, so output never stands
between a drain and its restore. A stop request (a signal, set by the command) is honoured
between steps, so a restore is never cut in half. The end of a run (hold the drain on a
clear verdict, restore it otherwise, record the verdict) comes last in the class.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from django.db import DatabaseError

from taskmaster import signals
from taskmaster.cluster.control import Cluster, Discovery
from taskmaster.cluster.discovery import Discovering
from taskmaster.cluster.events import EventWatch
from taskmaster.drain import records
from taskmaster.drain.fleet import Fleet
from taskmaster.drain.restore import restore_consumers
from taskmaster.drain.stop import StopRequest
from taskmaster.drain.watch import Watch
from taskmaster.exits import BrokerUnavailable, GateError, GateFailed
from taskmaster.gate.forecast import Forecast
from taskmaster.gate.inspection import Inspection, queue_names
from taskmaster.gate.outcome import Outcome, TaskReport, task_reports, worker_reports
from taskmaster.gate.rules import Blocker, Decision, Gate, Verdict
from taskmaster.models import GateRun

if TYPE_CHECKING:
    from taskmaster.drain.request import GateRequest

logger = logging.getLogger("taskmaster")

CANCEL_ATTEMPTS = 5
NO_WORKER = "no worker answered: nothing to drain (is the broker URL right?)"
WATCH_EVERY = 0.25  # seconds between two looks at the blockers, at least


def lease_seconds(interval: float) -> float:
    """How long a worker stays drained without hearing from its gate."""
    return max(60.0, 3 * interval)


class Observer(Protocol):
    def note(self, text: str) -> None: ...

    def polled(self, gate: Gate, decision: Decision, now: float) -> None: ...


def reconnect_delays(first: float = 1.0, most: float = 10.0) -> Iterator[float]:
    """The pauses between two tries to reach a lost broker: 1, 2, 4, 8, then 10 s each.

    A broker back after 5 s is found by the try at 1 + 2 + 4 = 7 s: a short outage costs
    up to its own length again, a long one at most 10 s more (docs/reliability.md).
    """
    delay = first
    while True:
        yield delay
        delay = min(delay * 2, most)


class Drain:
    """One gate run, from its first poll to its verdict and the end of its drain."""

    def __init__(
        self,
        cluster: Cluster,
        gate: Gate,
        run: GateRun,
        observer: Observer,
        stop: StopRequest,
        *,
        request: GateRequest,
        first: Discovery,
        fleet: Fleet,
        discovering: Discovering | None = None,
        events: EventWatch | None = None,
        redelivery: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cluster = cluster
        self.gate = gate
        self.run = run
        self.observer: Observer | None = observer
        self.stop = stop
        self.discovery: Discovery | None = first  # the caller's first look
        # Discovery runs in the background: the first one (the caller's, still listening for
        # late replies), then a new one every interval; a poll never waits for one.
        self.discovering = discovering
        self.discovered_at = clock()  # when the last discovery started
        self.first_heard = discovering is None  # the first discovery is over
        self.clear_pending = False  # the last look found nothing; the first discovery is not over
        self.claimed = set(first.queues)  # claimed with the run (records.open_run)
        self.fleet = fleet  # the broker's count beside the answers: who is silent
        self.said_of_broker = ""  # its last summary, said again only when it changes
        self.gave_up = False  # --fail-fast gave up before the deadline
        self.hold = request.seconds("hold")
        self.redelivery = redelivery or {}
        self.forecast = Forecast(gate, fail_fast=request.fail_fast, redelivery=self.redelivery)
        self.events = events
        self.clock = clock
        self.sleep = sleep
        self.notes: list[str] = []
        self.blockers = records.BlockerLog(run)
        self.renewed = 0.0  # when the lease was last given or renewed (the clock's time)
        self.tasks: list[TaskReport] = []  # every task of the last look
        self.poll_seconds = 0.0  # how long the last poll took

    # -- the gate, step by step -----------------------------------------------------

    def execute(self) -> Outcome:
        decision = Decision(None, (), 0)
        try:
            while not self.stop.signum:
                try:
                    decision = self.poll()
                    if decision.verdict is not None:
                        return self.finish(decision.verdict, decision.blockers)
                    self.wait(decision)
                except BrokerUnavailable as exc:
                    self.note(f"lost the broker ({exc}); reconnecting")
                    self.reconnect()  # then poll at once: it re-verifies who consumes what
        except BrokerUnavailable as exc:
            return self.fail(
                GateFailed(f"the broker stayed away past the deadline: {exc}"), decision
            )
        except Exception as exc:  # restore before anything else; the log keeps the traceback
            logger.exception("gate run #%s failed; restoring its consumers", self.run.pk)
            return self.fail(GateFailed(f"the gate failed: {exc!r}"), decision)
        assert self.stop.signum is not None
        self.note(f"stopped by {signal.Signals(self.stop.signum).name}: restoring consumers")
        return self.finish(Verdict.INTERRUPTED, decision.blockers)

    def reconnect(self) -> None:
        """Reconnect with backoff until the deadline (raises BrokerUnavailable after it)."""
        delays = reconnect_delays()
        while not self.stop.signum:
            try:
                self.cluster.reconnect(retries=0)
            except BrokerUnavailable:
                left = self.gate.deadline - self.clock()
                if left <= 0:
                    raise
                self.pause(min(next(delays), left))  # the last try falls on the deadline
            else:
                self.note("broker back: verifying every worker's consumers")
                return

    def poll(self) -> Decision:
        started = self.clock()
        discovery = self.next_discovery()
        joined = self.drain_newcomers(discovery) if discovery is not None else False
        if self.clear_pending and discovery is not None and not joined:
            # The last look found nothing to wait for, and discovery found no one else:
            # drained workers fetch nothing, so that look still holds.
            return Decision(Verdict.CLEAR, (), 0)
        self.clear_pending = False
        workers = self.gate.workers
        consuming: dict[str, set[str]] = {}
        inspection = Inspection(answered=frozenset(), tasks=())
        heard: dict[str, set[str]] = {}
        if workers:
            seconds = lease_seconds(self.gate.interval)
            current, inspection = self.cluster.look(
                workers,
                leased=self.gate.leased,
                run=self.run.pk,
                seconds=seconds,
                gate=self.run.opened_by,
            )
            self.record_lease(seconds)
            # A consumer can come back (a worker restarted, an add_consumer by hand): cancel
            # it again, and look anew at what the workers hold once it is gone.
            still = self.gate.still_consuming(current)
            if still:
                consuming = self.cancel(still)
                inspection = self.cluster.inspect_tasks([w for w in workers if w in current])
            if not inspection.answered:
                # Nobody answers: our own connection may be the one that is broken.
                self.cluster.reconnect(retries=0)
            self.notice_departures(inspection)
            # What each worker consumes now: what it said, less what was cancelled since.
            heard = {
                w: queue_names(current.get(w, [])) - (still.get(w, set()) - consuming.get(w, set()))
                for w in inspection.answered
            }
        silent = self.fleet.look(heard).blockers
        summary = self.fleet.summary()
        if self.fleet.count.available and summary != self.said_of_broker:
            self.said_of_broker = summary  # without a count, the verdict says so once
            self.note(f"broker: {summary}")
        now = self.clock()
        decision = self.judge(inspection, consuming, now, silent)
        self.blockers.record(decision.blockers, at=utc(now))
        signals.send(
            signals.gate_polled,
            GateRun,
            run=self.run,
            verdict=decision.verdict,
            blockers=decision.blockers,
            at=utc(now),
        )
        self.tell(lambda observer: observer.polled(self.gate, decision, now))
        # The interval runs from the start of one poll to the start of the next.
        self.poll_seconds = self.clock() - started
        wait = max(0.0, decision.wait_seconds - (now - started))
        return Decision(decision.verdict, decision.blockers, wait)

    def judge(
        self,
        inspection: Inspection,
        consuming: dict[str, set[str]],
        now: float,
        silent: tuple[Blocker, ...] = (),
    ) -> Decision:
        """The gate's decision on this look, and what to say ahead of time about it."""
        decision = self.gate.decide(
            inspection, consuming, now=now, poll_seconds=self.poll_seconds, silent=silent
        )
        self.tasks = task_reports(inspection.tasks, self.gate.registry, decision.blockers, now=now)
        for text in self.forecast.redelivered_twice(inspection.tasks, now=now):
            self.note(text)
        if decision.verdict is None:
            notes, give_up = self.forecast.look(decision.blockers, now=now)
            for text in notes:
                self.note(text)
            if give_up:
                self.gave_up = True
                return Decision(Verdict.BLOCKED, decision.blockers, 0)
        if decision.verdict == Verdict.CLEAR and not self.first_heard:
            self.clear_pending = True  # a clear waits for the last replies of the first discovery
            return Decision(None, (), self.gate.deadline - now)
        return decision

    def next_discovery(self) -> Discovery | None:
        """What to drain next: the caller's first look, then each background discovery as it
        ends. None while one is still listening; a new one starts once per interval."""
        if self.discovery is not None:
            discovery, self.discovery = self.discovery, None
            return discovery
        if self.discovering is None:
            if self.clock() - self.discovered_at >= self.gate.interval:
                self.discovering = Discovering(
                    self.cluster.app, reply_timeout=self.cluster.reply_timeout
                ).start()
                self.discovered_at = self.clock()
            return None
        if not self.discovering.done.is_set():
            return None
        discovering, self.discovering = self.discovering, None
        self.first_heard = True
        try:
            return discovering.result()
        except BrokerUnavailable as exc:  # its own connection failed: the next one retries
            self.note(f"discovery failed ({exc}); trying again at the next poll")
            self.clear_pending = False
            return None

    def drain_newcomers(self, discovery: Discovery) -> bool:
        """Record, lease and cancel the workers this gate has not drained yet (if any)."""
        for name in sorted(set(discovery.duplicates) - self.gate.duplicates):
            self.note(
                f"configuration error: {discovery.duplicates[name]} workers now answer as {name}"
            )
        self.gate.duplicates = set(discovery.duplicates)
        self.fleet.heard_from(discovery.queues)
        if not discovery.answers and not self.gate.snapshot and not self.fleet.silent:
            self.note(NO_WORKER)
        joined = self.gate.newcomers(discovery.queues)
        for worker in sorted(set(joined) - self.claimed):
            if records.claim(self.run, worker):
                self.claimed.add(worker)
            else:
                del joined[worker]
                self.gate.elsewhere.add(worker)
                self.note(f"{worker} joined, but another drain holds it: left to that gate")
        if not joined:
            return False
        self.gate.admit(joined)
        # The record comes before the first cancel: a killed gate leaves what a restore needs.
        records.save_snapshot(self.run, self.gate.snapshot)
        seconds = lease_seconds(self.gate.interval)
        leased = self.cluster.lease(
            joined, run=self.run.pk, seconds=seconds, gate=self.run.opened_by
        )
        if leased and not self.gate.leased:  # the first grant counts as the first renewal
            self.renewed = self.clock()
            records.renew_lease(self.run, utc(self.renewed + seconds))
        self.gate.leased |= leased
        for worker, declarations in sorted(joined.items()):
            names = ", ".join(sorted(queue_names(declarations)))
            lease = "" if worker in leased else "; no lease: it does not run taskmaster.tasks"
            if declarations:
                self.note(f"draining {worker} (consumes {names}{lease})")
            else:  # nothing to record, so nothing a restore could put back
                self.note(
                    f"{worker} consumes no queues: drained already (an earlier gate, a gate on "
                    f"another database)?{lease} ./manage.py resume_consumers restores an "
                    "earlier drain"
                )
        # Verified by the poll that follows (it re-cancels whatever is still consumed).
        self.cluster.cancel({w: queue_names(q) for w, q in joined.items()})
        return True

    def record_lease(self, seconds: float) -> None:
        """Every look renews the lease; the record of it is written once per half interval."""
        if self.gate.leased and self.clock() - self.renewed >= self.gate.interval / 2:
            self.renewed = self.clock()
            records.renew_lease(self.run, utc(self.renewed + seconds))

    def cancel(self, workers: dict[str, set[str]]) -> dict[str, set[str]]:
        """Cancel these consumers; Celery answers first, so verify and retry.

        Returns what is still consumed after the last try (the gate counts it a blocker).
        """
        left = {w: names for w, names in workers.items() if names}
        for attempt in range(CANCEL_ATTEMPTS):
            if not left:
                break
            self.cluster.cancel(left)
            self.sleep(0.05 * (attempt + 1))
            current = self.cluster.queues(left)
            left = {
                w: still
                for w, names in left.items()
                if (still := names & queue_names(current.get(w, [])))
            }
        return left

    def notice_departures(self, inspection: Inspection) -> None:
        offline = self.events.offline if self.events else set()
        for worker in self.gate.workers:
            if worker not in inspection.answered and worker in offline:
                self.gate.leave(worker)
                self.note(f"{worker} shut down cleanly (worker-offline): not a blocker")

    def wait(self, decision: Decision) -> None:
        """Until the next full poll; back at once when every blocker may be over."""
        if self.events:
            self.events.activity.clear()
        watch = Watch(decision.blockers, now=self.clock())
        end = self.clock() + decision.wait_seconds
        look = self.clock() + WATCH_EVERY
        while not self.stop.signum and (left := end - self.clock()) > 0:
            if self.events and self.events.activity.is_set():
                return  # a task ended or a worker left (events from workers run with -E)
            if self.clear_pending and self.discovering and self.discovering.done.is_set():
                return  # the first discovery is over: drain the late workers, or clear
            if self.clock() >= look:
                asked = self.clock()
                if watch.over(self.cluster, now=asked):
                    return
                # A big backlog makes a look slow: never spend more than a fifth of the time on it.
                look = self.clock() + max(WATCH_EVERY, 4 * (self.clock() - asked))
            if self.clear_pending and self.discovering:
                self.discovering.done.wait(min(0.02, left))  # back the moment it ends
            else:
                self.sleep(min(0.02, left))

    def pause(self, seconds: float) -> None:
        end = self.clock() + seconds
        while not self.stop.signum and (left := end - self.clock()) > 0:
            self.sleep(min(0.1, left))

    # -- the end: hold the drain (clear) or restore it, then record the verdict ------------

    def finish(self, verdict: Verdict, blockers: tuple[Blocker, ...]) -> Outcome:
        outcome = self.outcome(verdict, blockers)
        if verdict == Verdict.CLEAR:
            outcome.hold_until = self.hold_drain()
        else:
            if verdict == Verdict.BLOCKED:
                why = "gave up early (--fail-fast)" if self.gave_up else "deadline passed"
                self.note(f"{why} with {len(blockers):,} blocker(s): restoring consumers")
            outcome.restore_problems = self.restore()
        return self.close(outcome)

    def fail(self, failure: GateError, last: Decision) -> Outcome:
        self.note(f"{failure}; restoring consumers")
        outcome = self.outcome(Verdict.ERROR, last.blockers)
        outcome.failure = failure
        outcome.restore_problems = self.restore()
        return self.close(outcome)

    def outcome(self, verdict: Verdict, blockers: tuple[Blocker, ...]) -> Outcome:
        return Outcome(
            verdict=verdict,
            started_at=self.run.started_at,
            timeout=self.gate.timeout,
            interval=self.gate.interval,
            hold=self.hold,
            broker=self.run.broker,
            run_id=self.run.pk,
            blockers=blockers,
            tasks=self.tasks,
            scope=self.gate.scope.as_json(),
            out_of_scope=sorted(self.gate.out_of_scope),
            expected_clear_at=utc(expected) if (expected := self.forecast.expected) else None,
            redelivery=self.redelivery,
            gone=sorted(self.gate.gone),
            broker_count=self.fleet.as_json(),
            signum=self.stop.signum,
            notes=self.notes,
        )

    def close(self, outcome: Outcome) -> Outcome:
        """Record the verdict; a database that fails now undoes a clear (never unrecorded)."""
        outcome.workers = worker_reports(self.gate)
        outcome.finished_at = datetime.now(UTC)
        try:
            self.blockers.close(outcome.blockers)
            records.close_run(self.run, outcome)
        except DatabaseError as exc:
            logger.exception("gate run #%s: cannot record the verdict", self.run.pk)
            if outcome.restore_problems is None:
                outcome.restore_problems = self.restore()
            outcome.failure = GateFailed(
                f"the database failed while recording the verdict ({exc}); consumers restored. "
                "The run stays open there: run ./manage.py resume_consumers once it is back"
            )
            outcome.verdict = Verdict.ERROR
        logger.info(
            "gate run #%s: %s (exit %s), %d worker(s), %d blocker(s)",
            self.run.pk,
            outcome.verdict,
            outcome.exit_code,
            len(outcome.workers),
            len(outcome.blockers),
        )
        return outcome

    def hold_drain(self) -> datetime | None:
        """After a clear: the workers stay drained for the hold time, then consume again."""
        holders = self.gate.leased.intersection(self.gate.workers)
        if not holders:
            return None
        held = self.cluster.lease(
            holders, run=self.run.pk, seconds=self.hold, gate=self.run.opened_by
        )
        for worker in sorted(holders - held):
            self.note(
                f"{worker} did not confirm the hold: it consumes again when its lease runs out"
            )
        until = utc(self.clock() + self.hold)
        logger.info("gate run #%s: clear; drain held until %s", self.run.pk, until.isoformat())
        return until

    def restore(self) -> list[str]:
        try:
            problems = restore_consumers(
                self.cluster,
                self.gate.snapshot,
                run=self.run.pk,
                skip=self.gate.gone,
                sleep=self.sleep,
                note=self.note,
            )
        except BrokerUnavailable as exc:
            problems = [f"{exc}; every recorded worker may still be drained: {_who(self.gate)}"]
        if problems:
            logger.warning("gate run #%s: restore incomplete: %s", self.run.pk, "; ".join(problems))
        else:
            logger.info("gate run #%s: consumers restored on %s", self.run.pk, _who(self.gate))
        return problems

    # -- telling the observer ----------------------------------------------------------

    def note(self, text: str) -> None:
        self.notes.append(text)
        # Each step is the command's own output; the log keeps it for DEBUG, and the run's
        # opening, verdict and restore at INFO (docs/usage.md, "Logging").
        logger.debug("gate run #%s: %s", self.run.pk, text)
        self.tell(lambda observer: observer.note(text))

    def tell(self, message: Callable[[Observer], None]) -> None:
        if self.observer is None:
            return
        try:
            message(self.observer)
        except Exception:  # output is never worth a drained fleet: go on without it
            logger.exception("gate run #%s: the report failed; going on without it", self.run.pk)
            self.observer = None


def _who(gate: Gate) -> str:
    return ", ".join(sorted(gate.snapshot)) or "none"


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)
