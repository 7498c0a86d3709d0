"""How a drain ends: the workers held drained by their lease (clear) or given their
consumers back and verified (anything else), and only then the verdict recorded.

The second half of ``Drain`` (drain.py), which runs the loop that reaches the verdict.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from django.db import DatabaseError

from taskmaster import records
from taskmaster.cluster import Cluster
from taskmaster.exits import BrokerUnavailable, GateError, GateFailed
from taskmaster.fleet import Fleet
from taskmaster.forecast import Foresight
from taskmaster.gate import Blocker, Decision, Gate, Verdict
from taskmaster.models import GateRun
from taskmaster.outcome import Outcome, TaskReport, worker_reports
from taskmaster.restore import restore
from taskmaster.stopping import StopRequest

logger = logging.getLogger("taskmaster")


class Ending:
    """Hold or restore, then record: what ``Drain`` does once it has a verdict."""

    cluster: Cluster
    gate: Gate
    fleet: Fleet
    tasks: list[TaskReport]
    foresight: Foresight
    redelivery: dict[str, Any]
    run: GateRun
    hold: float
    notes: list[str]
    blockers: records.BlockerLog
    stop: StopRequest
    clock: Callable[[], float]
    sleep: Callable[[float], None]

    def note(self, text: str) -> None:
        raise NotImplementedError

    def finish(self, verdict: Verdict, blockers: tuple[Blocker, ...]) -> Outcome:
        outcome = self.outcome(verdict, blockers)
        if verdict == Verdict.CLEAR:
            outcome.hold_until = self.hold_drain()
        else:
            if verdict == Verdict.BLOCKED:
                self.note(f"deadline passed with {len(blockers):,} blocker(s): restoring consumers")
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
            expected_clear_at=utc(expected) if (expected := self.foresight.expected) else None,
            redelivery=self.redelivery,
            gone=sorted(self.gate.gone),
            broker_count=self.fleet.as_json(),
            signum=self.stop.signum,
            notes=self.notes,
        )

    def close(self, outcome: Outcome) -> Outcome:
        """Record the verdict; a database that fails now undoes a clear (never unrecorded)."""
        outcome.workers = worker_reports(self.gate)
        outcome.finished_at = datetime.now(timezone.utc)
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
            problems = restore(
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


def _who(gate: Gate) -> str:
    return ", ".join(sorted(gate.snapshot)) or "none"


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc)
