"""Writes a gate run to the database: claims, snapshot, lease, blockers, verdict, roster.

Reads are the models' (``GateRun.objects.open()``, ``Worker.objects.known()``).

Every write happens *before* the step it protects (claims and snapshot before the first
cancel), so a gate killed at any point leaves what a restore needs. Blockers are written in
bulk, and only what changed: a poll with thousands of held tasks costs a few queries.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction

from taskmaster.exits import ConfigurationError, DrainOpen, GateFailed
from taskmaster.gate.inspection import Queues, queue_names
from taskmaster.gate.outcome import Outcome
from taskmaster.gate.rules import Blocker, Verdict
from taskmaster.models import DrainedWorker, GateRun, RecordedBlocker, Worker

BATCH = 1000  # rows per bulk statement
SEEN_AGAIN = timedelta(hours=1)  # a worker's "last seen" is rewritten at most this often

logger = logging.getLogger("taskmaster")


@contextmanager
def database_errors(*, touched: bool) -> Iterator[None]:
    """A database that fails: a configuration error before any worker was touched (exit 2),
    a failed gate after (exit 6, consumers restored first)."""
    try:
        yield
    except DatabaseError as exc:
        if touched:
            raise GateFailed(f"the database failed: {exc}") from exc
        raise ConfigurationError(
            f"cannot use the database: {exc}. Has ./manage.py migrate run? Nothing was touched."
        ) from None


def ci_job() -> str:
    """The CI job running this gate, when the environment says so."""
    env = os.environ
    github = [env.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if env.get("GITHUB_ACTIONS") and all(github):
        server, repository, run = github
        return f"{server}/{repository}/actions/runs/{run}"
    for key in ("CI_JOB_URL", "BUILD_URL", "CIRCLE_BUILD_URL", "BUILDKITE_BUILD_URL"):
        if env.get(key):
            return env[key]
    return env.get("CI_JOB_ID", "")


def remember_workers(queues: Queues) -> None:
    """Add the workers of a discovery to the roster, or note them seen again.

    Queues are kept from the last time a worker consumed any (a drained worker consumes
    none); a worker already known is written again only when something changed, or once
    an hour, so a discovery every interval costs one query.
    """
    now = datetime.now(UTC)
    rows = {w.hostname: w for w in Worker.objects.filter(hostname__in=list(queues))}
    new: list[Worker] = []
    changed: list[Worker] = []
    for hostname, declarations in sorted(queues.items()):
        names = sorted(queue_names(declarations))
        row = rows.get(hostname)
        if row is None:
            new.append(Worker(hostname=hostname, queues=names, first_seen=now, last_seen=now))
        elif (
            (names and names != row.queues)
            or row.absent_since is not None
            or now - row.last_seen >= SEEN_AGAIN
        ):
            row.queues = names or row.queues
            row.last_seen, row.absent_since = now, None
            changed.append(row)
    # Another gate may add the same worker at the same moment: its row is as good as ours.
    Worker.objects.bulk_create(new, batch_size=BATCH, ignore_conflicts=True)
    Worker.objects.bulk_update(changed, ["queues", "last_seen", "absent_since"], batch_size=BATCH)


def forget_workers(hostnames: Iterable[str]) -> None:
    """The broker says these workers are gone: no gate asks about them until one hears them."""
    Worker.objects.filter(hostname__in=list(hostnames), absent_since__isnull=True).update(
        absent_since=datetime.now(UTC)
    )


def open_run(
    *,
    timeout: float,
    interval: float,
    hold: float,
    broker: str,
    workers: Iterable[str],
    scope: dict[str, Any] | None = None,
    requested: tuple[str, str] = ("", ""),
) -> GateRun:
    """Create the open run and claim its workers, in one transaction (raises DrainOpen)."""
    workers = sorted(workers)
    try:
        with transaction.atomic():
            run = GateRun.objects.create(
                timeout=timeout,
                interval=interval,
                hold=hold,
                user=getpass.getuser(),
                host=socket.gethostname(),
                pid=os.getpid(),
                ci_job=ci_job()[:500],
                command=" ".join(sys.argv)[:500],
                broker=broker[:500],
                scope=scope or {},
                requested_by=requested[0][:150],
                requested_from=requested[1][:100],
            )
            DrainedWorker.objects.bulk_create(DrainedWorker(run=run, hostname=w) for w in workers)
            return run
    except IntegrityError:
        claim = DrainedWorker.objects.filter(hostname__in=workers).select_related("run").first()
        if claim is None:  # released between our insert and this read: a real race, say so
            raise
        raise DrainOpen(
            f"another drain is open on {claim.hostname}: {claim.run.describe_open()}. If that "
            "gate is gone, recover with: ./manage.py resume_consumers"
        ) from None


def claim(run: GateRun, worker: str) -> bool:
    """Claim a worker that joined mid-drain; False if another drain holds it."""
    try:
        with transaction.atomic():
            DrainedWorker.objects.create(run=run, hostname=worker)
    except IntegrityError:
        return False
    return True


def save_snapshot(run: GateRun, snapshot: Queues) -> None:
    run.snapshot = snapshot
    run.save(update_fields=["snapshot"])


def renew_lease(run: GateRun, until: datetime) -> None:
    run.lease_until = until
    run.save(update_fields=["lease_until"])


class BlockerLog:
    """The blockers of one run, kept in memory and written to the database in bulk.

    Each poll writes only what changed: the new blockers (bulk inserts), those whose state
    changed, and those that went away (their last live is final). Blockers still there
    are written once more at the verdict. A poll with thousands of held tasks that did not
    change costs no query at all, and the verdict a few.
    """

    def __init__(self, run: GateRun) -> None:
        self.run = run
        self.rows: dict[tuple[str, str], RecordedBlocker] = {}
        self.present: set[tuple[str, str]] = set()  # seen at the last poll
        self.last_at: datetime | None = None  # when that poll was

    def record(self, blockers: Iterable[Blocker], *, at: datetime) -> None:
        new: list[RecordedBlocker] = []
        changed: list[RecordedBlocker] = []
        present: set[tuple[str, str]] = set()
        for b in blockers:
            key = (b.id, b.worker)
            present.add(key)
            row = self.rows.get(key)
            if row is None:
                row = self.rows[key] = RecordedBlocker(
                    run=self.run,
                    task_id=b.id,
                    name=b.name,
                    worker=b.worker,
                    state=b.state,
                    states=b.state,
                    classification=b.classification,
                    reason=b.reason[:500],
                    runtime_seconds=b.runtime_seconds,
                    first_seen=at,
                    last_seen=at,
                )
                new.append(row)
                continue
            if b.runtime_seconds is not None:  # kept in memory: written when it is final
                row.runtime_seconds = max(row.runtime_seconds or 0, b.runtime_seconds)
            if row.state != b.state:
                row.state = b.state
                if b.state not in row.states.split(", "):
                    row.states = f"{row.states}, {b.state}"[:100]
                row.reason = b.reason[:500]
                changed.append(row)
        gone = [self.rows[key] for key in self.present - present]
        if new or changed or gone:
            with transaction.atomic():
                RecordedBlocker.objects.bulk_create(new, batch_size=BATCH)
                self._changed(changed)
                if self.last_at is not None:
                    self._last_seen(gone, self.last_at)
        self.present, self.last_at = present, at

    def close(self, final: Iterable[Blocker]) -> None:
        """At the verdict: the last live of those still there, and which still block."""
        if self.last_at is None:
            return
        still = {(b.id, b.worker) for b in final}
        with transaction.atomic():
            self._last_seen([self.rows[key] for key in self.present], self.last_at)
            blocking = [self.rows[key].pk for key in still & set(self.rows)]
            for start in range(0, len(blocking), BATCH):
                chunk = blocking[start : start + BATCH]
                RecordedBlocker.objects.filter(pk__in=chunk).update(at_verdict=True)

    @staticmethod
    def _changed(rows: list[RecordedBlocker]) -> None:
        """Rows that changed state change together (a backlog's ETA tasks all fall due):
        one statement per new value, not a CASE over thousands of rows."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for row in rows:
            groups.setdefault((row.state, row.states, row.reason), []).append(row.pk)
        for (state, states, reason), pks in groups.items():
            for start in range(0, len(pks), BATCH):
                RecordedBlocker.objects.filter(pk__in=pks[start : start + BATCH]).update(
                    state=state, states=states, reason=reason
                )

    @staticmethod
    def _last_seen(rows: list[RecordedBlocker], at: datetime) -> None:
        """One statement per thousand rows; runtimes (running tasks only, a few) row by row."""
        pks = [row.pk for row in rows]
        for start in range(0, len(pks), BATCH):
            RecordedBlocker.objects.filter(pk__in=pks[start : start + BATCH]).update(last_seen=at)
        running = [row for row in rows if row.runtime_seconds is not None]
        RecordedBlocker.objects.bulk_update(running, ["runtime_seconds"], batch_size=BATCH)


def close_run(run: GateRun, outcome: Outcome) -> None:
    """Write the verdict. The claims are released unless consumers may still be cancelled.

    ``outcome.restore_problems`` is None when no restore was due (a clear verdict), empty
    when the restore was verified, and lists what is missing otherwise: the drain then stays
    open, so the next gate says how to recover instead of recording a drained fleet.
    """
    with transaction.atomic():
        run.verdict = str(outcome.verdict)
        run.finished_at = outcome.finished_at
        run.report = outcome.as_json()
        if outcome.restore_problems is not None:
            run.restore_problems = outcome.restore_problems
            run.restored_at = None if outcome.restore_problems else outcome.finished_at
            run.lease_until = None  # released
        else:
            run.lease_until = outcome.hold_until
        run.is_open = bool(outcome.restore_problems)
        run.save()
        if not run.is_open:
            run.claims.all().delete()


def mark_restored(
    run: GateRun, problems: list[str], *, requested: tuple[str, str] = ("", "")
) -> None:
    """After ``resume_consumers``: close the drain if everything is back."""
    now = datetime.now(UTC)
    with transaction.atomic():
        run.restore_problems = problems
        run.resumed_by, run.resumed_from = requested[0][:150], requested[1][:100]
        if not problems:
            run.restored_at = now
            run.is_open = False
            run.lease_until = None
            if not run.verdict:  # the gate was killed before its verdict
                run.verdict = str(Verdict.INTERRUPTED)
                run.finished_at = now
        run.save()
        if not run.is_open:
            run.claims.all().delete()


def keep_note(run_id: int, text: str) -> None:
    """Keep a sentence said after the verdict was recorded (a notification that failed, a
    metrics push refused) with the run's report, beside the gate's own notes. A database
    that fails now costs the note its record, never the caller its ending."""
    try:
        with transaction.atomic():
            run = GateRun.objects.select_for_update().only("report").get(pk=run_id)
            run.report = {**run.report, "notes": [*run.report.get("notes", []), text]}
            run.save(update_fields=["report"])
    except DatabaseError:
        logger.warning("gate run #%s: cannot keep a note: %s", run_id, text)
