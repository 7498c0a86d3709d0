"""The entry points: what the commands call, and what the admin or any other front end calls.

``prepare_deploy()`` builds and runs one gate, or looks once for a dry run, and returns its
``Outcome``. It does not raise for anything a gate can run into: every error becomes an
outcome that carries its exit code (``exits.py``). The way back, ``resume_consumers()``,
lives in ``recovery.py``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from taskmaster import records
from taskmaster.cluster import Cluster, Discovery, broker_label
from taskmaster.conf import app_settings
from taskmaster.discovery import Discovering
from taskmaster.drain import NO_WORKER, Drain, Observer
from taskmaster.events import EventWatch
from taskmaster.exits import ConfigurationError, GateError, GateFailed
from taskmaster.gate import Gate, Verdict, classification_of
from taskmaster.loading import check_settings_usable, database_errors, load_app, load_registry
from taskmaster.outcome import Outcome, TaskReport, worker_reports
from taskmaster.policy import sync_registry
from taskmaster.replies import Inspection
from taskmaster.stopping import StopRequest

logger = logging.getLogger("taskmaster")


@dataclass(frozen=True)
class GateRequest:
    """What one gate is asked to do; ``None`` values come from the settings."""

    timeout: float | None = None
    interval: float | None = None
    hold: float | None = None
    dry_run: bool = False
    allow_no_workers: bool = False
    requested_by: str = ""  # who asked from the admin, recorded on the run
    requested_from: str = ""  # and from which address

    def resolved(self) -> GateRequest:
        """The request with the settings' defaults filled in, checked (ConfigurationError)."""
        check_settings_usable()
        request = GateRequest(
            timeout=self.timeout or float(app_settings.TIMEOUT),
            interval=self.interval or float(app_settings.INTERVAL),
            hold=self.hold or float(app_settings.HOLD),
            dry_run=self.dry_run,
            allow_no_workers=self.allow_no_workers,
            requested_by=self.requested_by,
            requested_from=self.requested_from,
        )
        for name, value in (
            ("timeout", request.timeout),
            ("interval", request.interval),
            ("hold", request.hold),
        ):
            if not (isinstance(value, float) and math.isfinite(value) and value > 0):
                raise ConfigurationError(f"the {name} must be a number of seconds above 0")
        if request.seconds("interval") > request.seconds("timeout"):
            raise ConfigurationError(
                f"the interval ({request.interval:g} s) is longer than the timeout "
                f"({request.timeout:g} s): the gate would poll once. Shorten --interval or "
                "raise --timeout."
            )
        return request

    def seconds(self, name: str) -> float:
        value = getattr(self, name)
        assert value is not None, "resolve the request first"
        return float(value)


def prepare_deploy(request: GateRequest, observer: Observer, stop: StopRequest) -> Outcome:
    """Run one gate (or a dry run) and say how it ended; never raises for a gate's troubles."""
    failed = Outcome(
        verdict=Verdict.ERROR,
        started_at=datetime.now(timezone.utc),
        timeout=0.0,
        interval=0.0,
        hold=0.0,
        dry_run=request.dry_run,
    )
    try:
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
    reply_timeout = float(app_settings.REPLY_TIMEOUT)
    cluster = Cluster(app, reply_timeout=reply_timeout)
    broker = broker_label(app)
    with Discovering(app, reply_timeout=reply_timeout) as discovering, cluster.connected():
        # Discovery waits a whole reply timeout for workers it has not heard yet: meanwhile,
        # load the registry, record it, and drain the workers that have answered.
        registry = load_registry(app)
        if not request.dry_run:
            with database_errors(touched=False):
                sync_registry(registry)
        first = unique(discovering.result() if request.dry_run else discovering.settled())
        gate = Gate(
            registry,
            started_at=time.time(),
            timeout=request.seconds("timeout"),
            interval=request.seconds("interval"),
        )
        if stop.signum:  # nothing touched yet: nothing to restore
            return _interrupted(request, gate, broker, stop.signum)
        with database_errors(touched=False):
            if not first.answers and not request.allow_no_workers:
                _refuse_blind_clear(broker)
            if request.dry_run:
                return look_once(cluster, gate, first, request, broker)
            run = records.open_run(
                timeout=gate.timeout,
                interval=gate.interval,
                hold=request.seconds("hold"),
                broker=broker,
                workers=first.queues,
                requested=(request.requested_by, request.requested_from),
            )
        logger.info("gate run #%s opened on %s", run.pk, broker)
        with EventWatch(app) as events:
            drain = Drain(
                cluster,
                gate,
                run,
                observer,
                stop,
                first=first,
                discovering=None if discovering.done.is_set() else discovering,
                hold=request.seconds("hold"),
                events=events,
            )
            return drain.execute()


def unique(discovery: Discovery) -> Discovery:
    """The discovery, unless two workers answer under one name: then nothing is touched."""
    if discovery.duplicates:
        raise ConfigurationError(
            ", ".join(f"{n} workers answer as {name}" for name, n in discovery.duplicates.items())
            + ": give each worker a unique node name (-n). Nothing was touched."
        )
    return discovery


def look_once(
    cluster: Cluster, gate: Gate, discovery: Discovery, request: GateRequest, broker: str
) -> Outcome:
    """The dry run: what would block a gate now, without cancelling anything."""
    gate.admit(discovery.queues)
    drained = [w for w, queues in discovery.queues.items() if not queues]
    gate.leased = set(cluster.leases(drained)) if drained else set()
    workers = gate.workers
    inspection = cluster.inspect_tasks(workers) if workers else Inspection(frozenset(), ())
    now = time.time()
    decision = gate.decide(inspection, {}, now=now)
    blocking = {(b.id, b.worker) for b in decision.blockers}
    tasks = [
        TaskReport(
            id=t.id,
            name=t.name,
            worker=t.worker,
            state=t.state,
            classification=str(classification_of(t, gate.registry)),
            runtime_seconds=now - t.time_start if t.time_start else None,
            blocks=(t.id, t.worker) in blocking,
        )
        for t in inspection.tasks
    ]
    return Outcome(
        verdict=Verdict.BLOCKED if decision.blockers else Verdict.CLEAR,
        started_at=datetime.fromtimestamp(gate.started_at, timezone.utc),
        timeout=gate.timeout,
        interval=gate.interval,
        hold=request.seconds("hold"),
        broker=broker,
        dry_run=True,
        workers=worker_reports(gate),
        blockers=decision.blockers,
        tasks=tasks,
        notes=[] if workers else [NO_WORKER],
    )


def _refuse_blind_clear(broker: str) -> None:
    """No worker answers, but this database's gates have drained some: a wrong broker URL?"""
    fleet = records.last_fleet()
    if fleet is None:
        return  # a new project (the demo): nothing says workers should be there
    run, workers = fleet
    shown = ", ".join(workers[:5]) + (f" and {len(workers) - 5} more" if len(workers) > 5 else "")
    raise ConfigurationError(
        f"no worker answered on {broker}, but gate run #{run.pk} "
        f"({run.started_at:%Y-%m-%d %H:%M %Z}) drained {shown}. Is the broker URL (its "
        "vhost, its database number) the one the workers use? If the fleet is down on "
        "purpose, pass --allow-no-workers. Nothing was touched."
    )


def _interrupted(request: GateRequest, gate: Gate, broker: str, signum: int) -> Outcome:
    return Outcome(
        verdict=Verdict.INTERRUPTED,
        started_at=datetime.fromtimestamp(gate.started_at, timezone.utc),
        timeout=gate.timeout,
        interval=gate.interval,
        hold=request.seconds("hold"),
        broker=broker,
        signum=signum,
        notes=["stopped before any worker was touched"],
    )
