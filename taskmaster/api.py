"""The entry points: what the commands call, and what the admin or any other front end calls.

``prepare_deploy()`` builds and runs one gate, or looks once for a dry run, and returns its
``Outcome``. It does not raise for anything a gate can run into: every error becomes an
outcome that carries its exit code (``exits.py``). ``resume_consumers()`` does the same for
the way back.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from django.db import DatabaseError

from taskmaster import records
from taskmaster.checks import check_settings
from taskmaster.cluster import Cluster, Discovery, Inspection, broker_label
from taskmaster.conf import app_settings
from taskmaster.drain import NO_WORKER, Drain, Observer, StopRequest
from taskmaster.events import EventWatch
from taskmaster.exits import ConfigurationError, ExitCode, GateError, GateFailed
from taskmaster.gate import Gate, Verdict
from taskmaster.models import GateRun
from taskmaster.outcome import Outcome, worker_reports
from taskmaster.policy import sync_registry
from taskmaster.registry import Registry, build_registry
from taskmaster.restore import restore

logger = logging.getLogger("taskmaster")


@dataclass(frozen=True)
class GateRequest:
    """What one gate is asked to do; ``None`` values come from the settings."""

    timeout: float | None = None
    interval: float | None = None
    hold: float | None = None
    dry_run: bool = False
    allow_no_workers: bool = False

    def resolved(self) -> GateRequest:
        """The request with the settings' defaults filled in, checked (ConfigurationError)."""
        problems = [str(e.msg) for e in check_settings()]
        if problems:
            raise ConfigurationError("invalid TASKMASTER settings: " + " ".join(problems))
        request = GateRequest(
            timeout=self.timeout or float(app_settings.TIMEOUT),
            interval=self.interval or float(app_settings.INTERVAL),
            hold=self.hold or float(app_settings.HOLD),
            dry_run=self.dry_run,
            allow_no_workers=self.allow_no_workers,
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
    registry = load_registry(app)
    cluster = Cluster(app, reply_timeout=float(app_settings.REPLY_TIMEOUT))
    broker = broker_label(app)
    with cluster.connected():
        discovery = discover(cluster)
        gate = Gate(
            registry,
            started_at=time.time(),
            timeout=request.seconds("timeout"),
            interval=request.seconds("interval"),
        )
        if stop.signum:  # nothing touched yet: nothing to restore
            return _interrupted(request, gate, broker, stop.signum)
        with _database(touched=False):
            if not discovery.queues and not request.allow_no_workers:
                _refuse_blind_clear(broker)
            if request.dry_run:
                return look_once(cluster, gate, discovery, request, broker)
            sync_registry(registry)
            run = records.open_run(
                timeout=gate.timeout,
                interval=gate.interval,
                hold=request.seconds("hold"),
                broker=broker,
                workers=discovery.queues,
            )
        logger.info("gate run #%s opened on %s", run.pk, broker)
        with EventWatch(app) as events:
            drain = Drain(
                cluster,
                gate,
                run,
                observer,
                stop,
                first=discovery,
                hold=request.seconds("hold"),
                events=events,
            )
            return drain.execute()


def discover(cluster: Cluster) -> Discovery:
    """The workers that answer (one retry when none does), with no two under one name."""
    discovery = cluster.discover()
    if not discovery.answers:
        discovery = cluster.discover()  # a reply can be late on a busy broker
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
    decision = gate.decide(inspection, {}, now=time.time())
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


# -- the way back ----------------------------------------------------------------------


@dataclass
class Resumed:
    """What ``resume_consumers`` did: the runs it restored and what is still missing."""

    exit_code: int = ExitCode.CLEAR
    restored: list[int] = field(default_factory=list)  # gate runs now closed
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # the sentence of an error that stopped it


def resume_consumers(
    run_id: int | None, *, ignore_missing: bool, say: Callable[[str], None]
) -> Resumed:
    """Restore the open drains (or gate run ``run_id``), verify, and close them.

    Never raises for what it can run into; ``say`` receives each sentence for a person.
    """
    try:
        problems = [str(e.msg) for e in check_settings()]
        if problems:
            raise ConfigurationError("invalid TASKMASTER settings: " + " ".join(problems))
        app = load_app()
        cluster = Cluster(app, reply_timeout=float(app_settings.REPLY_TIMEOUT))
        broker = broker_label(app)
        with _database(touched=False):
            runs = _runs_to_restore(run_id, say)
        result = Resumed()
        with cluster.connected():
            for run in runs:
                _resume_one(cluster, run, broker, ignore_missing, say, result)
        return result
    except GateError as exc:
        return Resumed(exit_code=exc.exit_code, error=str(exc))
    except Exception as exc:  # a bug: say it, log the traceback, exit on contract
        logger.exception("resume_consumers failed")
        return Resumed(exit_code=ExitCode.GATE_FAILED, error=f"resume_consumers failed: {exc!r}")


def _runs_to_restore(run_id: int | None, say: Callable[[str], None]) -> list[GateRun]:
    if run_id is not None:
        run = GateRun.objects.filter(pk=run_id).first()
        if run is None:
            raise ConfigurationError(f"there is no gate run #{run_id}")
        return [run]
    open_runs = list(GateRun.objects.open().order_by("started_at", "pk"))
    if open_runs:
        return open_runs
    latest = GateRun.objects.first()
    if latest is None:
        say("No drain on record: nothing to restore.")
        return []
    if latest.verdict == Verdict.CLEAR and latest.restored_at is None:
        return [latest]  # a clear whose deploy was called off: the hold still drains them
    done = (
        f"was restored at {latest.restored_at:%Y-%m-%d %H:%M:%S %Z}"
        if latest.restored_at
        else "left nothing to restore"
    )
    say(
        f"No open drain: the latest, gate run #{latest.pk} ({latest.verdict}), {done}. "
        "Nothing to do."
    )
    return []


def _resume_one(
    cluster: Cluster,
    run: GateRun,
    broker: str,
    ignore_missing: bool,
    say: Callable[[str], None],
    result: Resumed,
) -> None:
    if run.broker and run.broker != broker:
        raise ConfigurationError(
            f"gate run #{run.pk} drained the workers of {run.broker}, but this project's "
            f"broker is {broker}: run resume_consumers where the workers' broker is "
            "configured. Nothing was restored."
        )
    if run.is_open and records.gate_alive(run):
        say(
            f"gate run #{run.pk} is still running (pid {run.pid}): stop it with SIGINT or "
            "SIGTERM and it restores the consumers itself"
        )
        result.exit_code = max(result.exit_code, ExitCode.DRAIN_OPEN)
        return
    if not run.is_open and run.restored_at is not None:
        when = f"{run.restored_at:%Y-%m-%d %H:%M:%S %Z}"
        say(f"gate run #{run.pk} was restored at {when}: nothing to do.")
        return
    workers = ", ".join(
        f"{w} ({', '.join(sorted(q['name'] for q in queues)) or 'no queues'})"
        for w, queues in sorted(run.snapshot.items())
    )
    say(
        f"Restoring gate run #{run.pk} ({run.verdict or 'killed before its verdict'}, opened "
        f"{run.started_at:%Y-%m-%d %H:%M:%S %Z} by {run.opened_by}): {workers or 'no workers'}"
    )
    gone = set(run.report.get("gone", []))  # shut down cleanly during the gate
    problems = restore(
        cluster, run.snapshot, run=run.pk, skip=gone, missing_ok=ignore_missing, note=say
    )
    with _database(touched=True):
        records.mark_restored(run, problems)
    if problems:
        result.problems += problems
        result.exit_code = ExitCode.RESTORE_INCOMPLETE
    else:
        result.restored.append(run.pk)
    logger.info(
        "resume_consumers: gate run #%s %s", run.pk, "incomplete" if problems else "restored"
    )


# -- loading what a gate needs ----------------------------------------------------------


def load_app() -> Any:
    """The configured Celery app, or a configuration error that says how to fix it."""
    try:
        return app_settings.celery_app()
    except Exception as exc:  # the user's module: any error in it is a configuration error
        raise ConfigurationError(
            f"cannot import the Celery app {app_settings.CELERY_APP!r} ({exc}); "
            "set TASKMASTER['CELERY_APP'] to its dotted path, e.g. 'project.celery.app'"
        ) from None


def load_registry(app: Any) -> Registry:
    try:
        return build_registry(app, short_limit=float(app_settings.SHORT_TASK_LIMIT))
    except Exception as exc:  # a task module that fails to import: the user's code, say so
        raise ConfigurationError(
            f"cannot load the tasks of the Celery app {app_settings.CELERY_APP!r}: {exc!r}"
        ) from None


@contextmanager
def _database(*, touched: bool) -> Any:
    try:
        yield
    except DatabaseError as exc:
        if touched:
            raise GateFailed(f"the database failed: {exc}") from exc
        raise ConfigurationError(
            f"cannot use the database: {exc}. Has ./manage.py migrate run? Nothing was touched."
        ) from None
