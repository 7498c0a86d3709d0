"""The way back: ``resume_consumers()`` restores drains that a gate could not close.

A killed gate, an exit 5, a clear verdict whose deploy was called off: each left a record
with the consumers to put back. Like the gate's entry point, it never raises for what it can
run into; each sentence goes to ``say`` and the result carries the exit code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from taskmaster import log, signals
from taskmaster.checks.settings import settings_usable
from taskmaster.cluster.broker import broker_label
from taskmaster.cluster.control import Cluster
from taskmaster.conf import app_settings, load_app
from taskmaster.drain import records
from taskmaster.drain.records import database_errors
from taskmaster.drain.restore import restore_consumers
from taskmaster.exits import ConfigurationError, ExitCode, GateError
from taskmaster.gate.rules import Verdict
from taskmaster.models import GateRun

logger = logging.getLogger("taskmaster")


@dataclass
class Resumed:
    """What ``resume_consumers`` did: the runs it restored and what is still missing."""

    exit_code: int = ExitCode.CLEAR
    restored: list[int] = field(default_factory=list)  # gate runs now closed
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # the sentence of an error that stopped it


def resume_consumers(
    run_id: int | None,
    *,
    ignore_missing: bool,
    say: Callable[[str], None],
    requested: tuple[str, str] = ("", ""),
) -> Resumed:
    """Restore the open drains (or gate run ``run_id``), verify, and close them.

    Never raises for what it can run into; ``say`` receives each sentence for a person.
    ``requested``: who asked from the admin, and from which address (kept on each run).
    """
    try:
        settings_usable()
        app = load_app()
        cluster = Cluster(app, reply_timeout=float(app_settings.REPLY_TIMEOUT))
        broker = broker_label(app)
        with database_errors(touched=False):
            runs = _runs_to_restore(run_id, say)
        result = Resumed()
        with cluster.connected():
            for run in runs:
                with log.run_scope(run.pk):  # its records carry the run's id
                    _resume_one(cluster, run, broker, ignore_missing, say, result, requested)
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
    requested: tuple[str, str],
) -> None:
    if run.broker and run.broker != broker:
        raise ConfigurationError(
            f"gate run #{run.pk} drained the workers of {run.broker}, but this project's "
            f"broker is {broker}: run resume_consumers where the workers' broker is "
            "configured. Nothing was restored."
        )
    if run.is_open and run.gate_alive():
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
    problems = restore_consumers(
        cluster, run.snapshot, run=run.pk, skip=gone, missing_ok=ignore_missing, note=say
    )
    with database_errors(touched=True):
        records.mark_restored(run, problems, requested=requested)

    def note(text: str) -> None:
        say(text)
        records.keep_note(run.pk, text)

    signals.send(
        signals.consumers_restored,
        GateRun,
        run=run,
        workers=sorted(w for w in run.snapshot if w not in gone),
        problems=problems,
        by="admin" if requested[0] else "resume_consumers",
        note=note,
    )
    if problems:
        result.problems += problems
        result.exit_code = ExitCode.RESTORE_INCOMPLETE
    else:
        result.restored.append(run.pk)
    logger.info(
        "resume_consumers: gate run #%s %s", run.pk, "incomplete" if problems else "restored"
    )
