"""A project's own receivers of Taskmaster's signals, as docs/observability.md shows them:
each writes what it heard as one JSON line to ``$SIGNAL_LOG``, with the queues the workers
consume at that moment (asked of the workers themselves), then raises if ``$SIGNAL_RAISE``
is set. Installed by ``signal_settings.py``."""

from __future__ import annotations

import json
import os
from typing import Any

from django.apps import AppConfig
from django.dispatch import receiver

from taskmaster import signals


def consumed_now(workers: list[str]) -> dict[str, list[str]]:
    from project.celery import app

    replies = app.control.inspect(destination=workers, timeout=2.0).active_queues() or {}
    return {w: sorted(q["name"] for q in queues) for w, queues in replies.items()}


def heard(name: str, run: Any, **fields: Any) -> None:
    line = {"signal": name, "run": run.pk if run is not None else None, **fields}
    with open(os.environ["SIGNAL_LOG"], "a") as log:
        log.write(json.dumps(line, default=str) + "\n")
    if os.environ.get("SIGNAL_RAISE"):
        raise RuntimeError(f"a receiver of {name} that raises")


@receiver(signals.gate_started, dispatch_uid="tests.gate_started")
def started(sender: Any, run: Any, workers: list[str], note: Any, **kwargs: Any) -> None:
    note(f"heard gate_started for {len(workers)} worker(s)")
    heard("gate_started", run, workers=workers, queues=consumed_now(workers))


@receiver(signals.gate_polled, dispatch_uid="tests.gate_polled")
def polled(sender: Any, run: Any, verdict: Any, blockers: Any, at: Any, **kwargs: Any) -> None:
    heard("gate_polled", run, verdict=verdict, blockers=[b.name for b in blockers], at=at)


@receiver(signals.consumers_restored, dispatch_uid="tests.consumers_restored")
def restored(
    sender: Any, run: Any, workers: list[str], problems: list[str], by: str, **kwargs: Any
) -> None:
    heard("consumers_restored", run, workers=workers, problems=problems, by=by,
          queues=consumed_now(workers))  # fmt: skip


@receiver(signals.gate_finished, dispatch_uid="tests.gate_finished")
def finished(sender: Any, run: Any, outcome: Any, note: Any, **kwargs: Any) -> None:
    note(f"heard gate_finished: {outcome.verdict}")
    workers = [w.hostname for w in outcome.workers]
    heard("gate_finished", run, verdict=outcome.verdict, exit_code=outcome.exit_code,
          recorded=run.verdict if run is not None else None,
          queues=consumed_now(workers) if workers else {})  # fmt: skip


class SignalReceivers(AppConfig):
    name = "tests.support.signal_receivers"
    label = "signal_receivers"
