"""``./manage.py prepare_deploy``: drain the Celery workers and say whether a deploy is safe."""

from __future__ import annotations

import json
import signal
import sys
import time
from argparse import ArgumentParser
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskmaster import records
from taskmaster.cluster import BrokerUnavailable, Cluster, Inspection, masked_broker_url
from taskmaster.conf import app_settings
from taskmaster.drain import Drain, Outcome, StopRequest
from taskmaster.events import EventWatch
from taskmaster.gate import Gate
from taskmaster.management.common import (
    check_usable_settings,
    database_errors,
    load_app,
    load_registry,
    positive_seconds,
)
from taskmaster.policy import sync_registry
from taskmaster.report import human_report


class Command(BaseCommand):
    help = (
        "Stop every Celery worker fetching new tasks, wait until none runs a task that a "
        "stop would lose, then clear the deploy (exit 0) or restore the consumers and list "
        "the blockers (exit 1). Exit codes: docs/usage.md."
    )
    requires_system_checks: list[str] = []  # a deploy gate must not fail on unrelated warnings

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            help="seconds to wait for blockers to end (default: TASKMASTER['TIMEOUT'], 600)",
        )
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            help="seconds between two polls (default: TASKMASTER['INTERVAL'], 20)",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print one JSON report on stdout; human output goes to stderr",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="look once and say what would block, without cancelling any consumer",
        )
        parser.add_argument(
            "--show-args",
            action="store_true",
            help="show task arguments as bounded reprs (default: TASKMASTER['SHOW_TASK_ARGS'])",
        )

    def handle(
        self,
        *,
        timeout: float | None,
        interval: float | None,
        as_json: bool,
        dry_run: bool,
        show_args: bool,
        **options: Any,
    ) -> None:
        with_args = show_args or app_settings.SHOW_TASK_ARGS
        try:
            outcome = self.gate(timeout, interval, as_json, dry_run, with_args)
        except CommandError as exc:
            if as_json:  # a CI job parses stdout: it gets one JSON object whatever happens
                error = {"verdict": "error", "exit_code": exc.returncode, "error": str(exc)}
                self.stdout.write(_dumps(error))
            raise
        if outcome is None:
            return
        if as_json:
            self.stdout.write(_dumps(outcome.as_json(with_args=with_args)))
        if outcome.exit_code:
            sys.exit(outcome.exit_code)

    def gate(
        self,
        timeout: float | None,
        interval: float | None,
        as_json: bool,
        dry_run: bool,
        with_args: bool,
    ) -> Outcome | None:
        check_usable_settings()
        timeout = timeout or float(app_settings.TIMEOUT)
        interval = interval or float(app_settings.INTERVAL)
        app = load_app()
        registry = load_registry(app)
        if not dry_run:
            with database_errors(touched=False):
                sync_registry(registry)
        human_stream = self.stderr if as_json else self.stdout
        cluster = Cluster(app, reply_timeout=float(app_settings.REPLY_TIMEOUT))
        try:
            with cluster.connected(), _stop_on_signals() as stop, database_errors(touched=True):
                if dry_run:
                    self.dry_run(cluster, registry, timeout, human_stream, as_json, with_args)
                    return None
                run = records.open_run(
                    timeout=timeout, interval=interval, broker=masked_broker_url(app)
                )
                gate = Gate(registry, started_at=time.time(), timeout=timeout, interval=interval)
                report = human_report(human_stream, with_args=with_args)
                try:
                    with EventWatch(app) as events:
                        outcome = Drain(cluster, gate, run, report, stop, events=events).execute()
                finally:
                    report.close()
                report.finish(outcome)
                return outcome
        except BrokerUnavailable as exc:
            raise CommandError(f"{exc}. Nothing was touched.", returncode=3) from None
        except records.DrainOpen as exc:
            raise CommandError(
                f"{exc}. If that gate is gone, recover with: ./manage.py resume_consumers",
                returncode=4,
            ) from None

    def dry_run(
        self,
        cluster: Cluster,
        registry: Any,
        timeout: float,
        stream: Any,
        as_json: bool,
        with_args: bool,
    ) -> None:
        gate = Gate(registry, started_at=time.time(), timeout=timeout, interval=0)
        gate.record(cluster.queues())
        inspection = (
            cluster.inspect_tasks(gate.workers) if gate.workers else Inspection(frozenset(), ())
        )
        decision = gate.decide(inspection, {}, now=time.time())
        report = human_report(stream, with_args=with_args)
        report.polled(gate, decision, time.time())
        report.close()
        if as_json:
            dry = {
                "verdict": "dry-run",
                "workers": [{"hostname": w} for w in gate.workers],
                "blockers": [b.as_json(with_args=with_args) for b in decision.blockers],
            }
            self.stdout.write(_dumps(dry))
        if decision.blockers:
            sys.exit(1)


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)


@contextmanager
def _stop_on_signals() -> Iterator[StopRequest]:
    """Turn SIGINT/SIGTERM into a stop request the drain honours between steps."""
    stop = StopRequest()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
