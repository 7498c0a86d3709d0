"""The entry points: what the commands call, and what the admin or any other front end calls.

``prepare_deploy()`` builds and runs one gate, or looks once for a dry run, and returns its
``Outcome``. It does not raise for anything a gate can run into: every error becomes an
outcome that carries its exit code (``exits.py``). The way back, ``resume_consumers()``,
is ``drain/recovery.py``'s, and is exported here too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import DatabaseError

from taskmaster import log, signals
from taskmaster.checks.settings import settings_usable
from taskmaster.cluster.broker import broker_label, redelivery
from taskmaster.cluster.control import Cluster, Discovery
from taskmaster.cluster.discovery import Discovering
from taskmaster.cluster.events import EventWatch
from taskmaster.conf import app_settings, load_app
from taskmaster.drain import records
from taskmaster.drain.fleet import Fleet, app_queues
from taskmaster.drain.policy import sync_registry
from taskmaster.drain.records import database_errors
from taskmaster.drain.recovery import Resumed, resume_consumers
from taskmaster.drain.request import GateRequest
from taskmaster.drain.run import NO_WORKER, Drain, Observer
from taskmaster.drain.stop import StopRequest
from taskmaster.exits import ConfigurationError, GateError, GateFailed
from taskmaster.gate.inspection import Inspection, Queues, queue_names
from taskmaster.gate.outcome import Outcome, task_reports, worker_reports
from taskmaster.gate.registry import load_registry
from taskmaster.gate.rules import Gate, Verdict
from taskmaster.gate.scope import Scope
from taskmaster.humanize import some
from taskmaster.models import GateRun, Worker

__all__ = [
    "GateRequest",
    "Observer",
    "Outcome",
    "Resumed",
    "Scope",
    "StopRequest",
    "Verdict",
    "prepare_deploy",
    "resume_consumers",
]

logger = logging.getLogger("taskmaster")

LISTENING = (
    "discovery was still listening when this look was taken (a broker slow to answer): a "
    "worker that answers later is not in it"
)


def prepare_deploy(request: GateRequest, observer: Observer, stop: StopRequest) -> Outcome:
    """Run one gate (or a dry run) and say how it ended; never raises for a gate's troubles.

    Once the verdict is recorded and the consumers are back (unless it cleared), the
    project hears of it: ``consumers_restored`` and ``gate_finished`` (``signals.py``).
    """
    with log.run_scope():  # its records carry the run's id once the gate has opened it
        outcome = _prepare(request, observer, stop)
        if not outcome.dry_run:
            _announce(outcome, observer)
    return outcome


def _prepare(request: GateRequest, observer: Observer, stop: StopRequest) -> Outcome:
    failed = Outcome.failed(GateFailed("the gate did not start"), dry_run=request.dry_run)
    try:
        settings_usable()
        request = request.resolved()
        failed.timeout, failed.interval = request.seconds("timeout"), request.seconds("interval")
        failed.hold = request.seconds("hold")
        app = load_app()
        failed.broker = broker_label(app)
        return _gate(app, request, observer, stop)
    except GateError as exc:
        failed.failure = exc
    except Exception as exc:  # a bug, before any worker was touched (the drain has its own)
        logger.exception("the gate failed before touching any worker")
        failed.failure = GateFailed(f"the gate failed before touching any worker: {exc!r}")
    return failed


def _gate(app: Any, request: GateRequest, observer: Observer, stop: StopRequest) -> Outcome:
    began = time.time()  # the deadline counts from here, whatever discovery takes
    reply_timeout = float(app_settings.REPLY_TIMEOUT)
    # A broadcast ends a reply timeout after its last reply, and an empty one is tried
    # twice: past this, discovery is stuck (a broker under load), and what it heard is used.
    listening = 3 * reply_timeout + 1.0
    cluster = Cluster(app, reply_timeout=reply_timeout)
    broker = broker_label(app)
    with Discovering(app, reply_timeout=reply_timeout) as discovering, cluster.connected():
        # Discovery waits a whole reply timeout for workers it has not heard yet: meanwhile,
        # load the registry, record it, and drain the workers that have answered.
        registry = load_registry(app)
        if not request.dry_run:
            with database_errors(touched=False):
                sync_registry(registry)
        known = _roster(dry_run=request.dry_run)
        first = unique(
            discovering.result(timeout=listening) if request.dry_run else discovering.settled()
        )
        gate = Gate(
            registry,
            started_at=began,
            timeout=request.seconds("timeout"),
            interval=request.seconds("interval"),
            scope=request.scope,
        )
        in_scope = gate.newcomers(first.queues)
        if not in_scope and not request.allow_no_workers:
            first = unique(discovering.result(timeout=listening))  # a late reply may be in scope
            in_scope = gate.newcomers(first.queues)
        if stop.signum:  # nothing touched yet: nothing to restore
            return _interrupted(request, gate, broker, stop.signum)
        fleet = Fleet(
            cluster,
            gate,
            declared=app_queues(app, registry),
            known=known,
            remember=not request.dry_run,
        )
        # No worker in scope answered: the broker may still see one that cannot answer.
        silent = not in_scope and fleet.look(_heard(first)).blockers
        with database_errors(touched=False):
            if not in_scope and not request.allow_no_workers and not silent:
                _refuse_no_worker(broker, gate, first)
            if request.dry_run:
                late = not discovering.done.is_set()
                return look_once(cluster, gate, in_scope, request, broker, fleet, first, late=late)
            run = records.open_run(
                timeout=gate.timeout,
                interval=gate.interval,
                hold=request.seconds("hold"),
                broker=broker,
                workers=in_scope,
                scope=request.scope.as_json(),
                requested=(request.requested_by, request.requested_from),
            )
        log.set_run(run.pk)
        logger.info("gate run #%s opened on %s", run.pk, broker)
        with EventWatch(app) as events:
            drain = Drain(
                cluster,
                gate,
                run,
                observer,
                stop,
                request=request,
                first=first,
                fleet=fleet,
                discovering=None if discovering.done.is_set() else discovering,
                events=events,
                redelivery=redelivery(app),
            )
            workers = sorted(in_scope)
            signals.send(signals.gate_started, GateRun, run=run, workers=workers, note=drain.note)
            return drain.execute()


def _announce(outcome: Outcome, observer: Observer) -> None:
    """Send ``consumers_restored`` (after a restore) and ``gate_finished``: after the
    verdict is recorded, never before. A receiver's sentence reaches the person, the report
    and the run's record; nothing a receiver does changes the outcome's exit code."""
    run = _recorded(outcome.run_id)

    def note(text: str) -> None:
        outcome.notes.append(text)
        try:
            observer.note(text)
        except Exception:  # output is never worth more than the rest of the announcement
            logger.exception("gate run #%s: the report failed", outcome.run_id)
        if run is not None:
            records.keep_note(run.pk, text)

    if run is not None and outcome.restore_problems is not None:
        gone = set(outcome.gone)
        restored = [w.hostname for w in outcome.workers if w.hostname not in gone]
        problems = list(outcome.restore_problems)
        signals.send(
            signals.consumers_restored,
            GateRun,
            run=run,
            workers=restored,
            problems=problems,
            by="gate",
            note=note,
        )
    signals.send(signals.gate_finished, GateRun, run=run, outcome=outcome, note=note)


def _recorded(run_id: int | None) -> GateRun | None:
    """The gate run as recorded with its verdict; None without one, or without a database."""
    if run_id is None:
        return None
    try:
        return GateRun.objects.filter(pk=run_id).first()
    except DatabaseError:
        logger.warning("gate run #%s: cannot read it back to announce its verdict", run_id)
        return None


def unique(discovery: Discovery) -> Discovery:
    """The discovery, unless two workers answer under one name: then nothing is touched."""
    if discovery.duplicates:
        raise ConfigurationError(
            ", ".join(f"{n} workers answer as {name}" for name, n in discovery.duplicates.items())
            + ": give each worker a unique node name (-n). Nothing was touched."
        )
    return discovery


def _roster(*, dry_run: bool) -> dict[str, set[str]]:
    """The workers earlier gates heard; a dry run goes on without them if the database fails
    (the readiness page must not need one)."""
    if not dry_run:
        with database_errors(touched=False):
            return Worker.objects.known().roster()
    try:
        return Worker.objects.known().roster()
    except DatabaseError:
        logger.warning("dry run: cannot read the roster of workers", exc_info=True)
        return {}


def _heard(discovery: Discovery) -> dict[str, set[str]]:
    return {worker: queue_names(queues) for worker, queues in discovery.queues.items()}


def look_once(
    cluster: Cluster,
    gate: Gate,
    in_scope: Queues,
    request: GateRequest,
    broker: str,
    fleet: Fleet,
    first: Discovery,
    *,
    late: bool = False,
) -> Outcome:
    """The dry run: what would block a gate now, without cancelling anything. ``late``: the
    discovery was still listening when the look was taken."""
    gate.admit(in_scope)
    drained = [w for w, queues in in_scope.items() if not queues]
    gate.leased = set(cluster.leases(drained)) if drained else set()
    workers = gate.workers
    inspection = cluster.inspect_tasks(workers) if workers else Inspection(frozenset(), ())
    silent = fleet.look(_heard(first)).blockers
    now = time.time()
    decision = gate.decide(inspection, {}, now=now, silent=silent)
    return Outcome.of(
        gate,
        Verdict.BLOCKED if decision.blockers else Verdict.CLEAR,
        hold=request.seconds("hold"),
        broker=broker,
        dry_run=True,
        workers=worker_reports(gate),
        blockers=decision.blockers,
        tasks=task_reports(inspection.tasks, gate.registry, decision.blockers, now=now),
        scope=request.scope.as_json(),
        out_of_scope=sorted(gate.out_of_scope),
        redelivery=redelivery(cluster.app),
        broker_count=fleet.as_json(),
        notes=([] if workers else [NO_WORKER]) + ([LISTENING] if late else []),
    )


def _refuse_no_worker(broker: str, gate: Gate, discovery: Discovery) -> None:
    """No worker to drain: none in the scope of a selective drain, or none at all although
    this database's gates have drained some (a wrong broker URL?)."""
    if discovery.answers:
        seen = sorted(discovery.answers)
        raise ConfigurationError(
            f"no worker matches {gate.scope.describe()}: {len(seen)} answered ({some(seen)}). If "
            "the one you meant is gone already, pass --allow-no-workers. Nothing was touched."
        )
    run = GateRun.objects.that_drained_workers().first()
    if run is None:
        return  # a new project (the demo): nothing says workers should be there
    workers = sorted(run.snapshot)
    raise ConfigurationError(
        f"no worker answered on {broker}, but gate run #{run.pk} "
        f"({run.started_at:%Y-%m-%d %H:%M %Z}) drained {some(workers)}. Is the broker URL (its "
        "vhost, its database number) the one the workers use? If the fleet is down on "
        "purpose, pass --allow-no-workers. Nothing was touched."
    )


def _interrupted(request: GateRequest, gate: Gate, broker: str, signum: int) -> Outcome:
    return Outcome.of(
        gate,
        Verdict.INTERRUPTED,
        hold=request.seconds("hold"),
        broker=broker,
        signum=signum,
        notes=["stopped before any worker was touched"],
    )
