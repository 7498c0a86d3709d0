"""``./manage.py resume_consumers``: put back the consumers a drain cancelled."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from taskmaster import records
from taskmaster.cluster import BrokerUnavailable, Cluster, queue_names
from taskmaster.conf import app_settings
from taskmaster.management.common import load_app
from taskmaster.models import GateRun
from taskmaster.restore import restore


class Command(BaseCommand):
    help = (
        "Restore the consumers recorded by the open drain (or, if none is open, the latest "
        "one), verify them, and close the drain. Safe to run twice."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--run", type=int, help="restore this gate run instead (default: open, else latest)"
        )
        parser.add_argument(
            "--ignore-missing",
            action="store_true",
            help="close the drain even if some recorded workers do not answer (they are gone "
            "for good: a restart gives them their configured queues)",
        )

    def handle(self, *, run: int | None, ignore_missing: bool, **options: Any) -> None:
        gate_run = GateRun.objects.filter(pk=run).first() if run else None
        if run and gate_run is None:
            raise CommandError(f"there is no gate run #{run}", returncode=2)
        gate_run = gate_run or GateRun.objects.for_recovery()
        if gate_run is None:
            self.stdout.write("No drain on record: nothing to restore.")
            return
        if gate_run.is_open and records.gate_alive(gate_run):
            raise CommandError(
                f"gate run #{gate_run.pk} is still running (pid {gate_run.pid}): stop it with "
                "SIGINT or SIGTERM and it restores the consumers itself",
                returncode=4,
            )
        snapshot = gate_run.snapshot
        gone = set(gate_run.report.get("gone", []))  # shut down cleanly during the gate
        workers = ", ".join(
            f"{w} ({', '.join(sorted(queue_names(q))) or 'no queues'})"
            for w, q in sorted(snapshot.items())
        )
        self.stdout.write(f"Restoring gate run #{gate_run.pk}: {workers or 'no workers'}")
        cluster = Cluster(load_app(), reply_timeout=float(app_settings.REPLY_TIMEOUT))
        try:
            with cluster.connected():
                problems = restore(
                    cluster,
                    snapshot,
                    skip=gone,
                    missing_ok=ignore_missing,
                    note=self.stdout.write,
                )
        except BrokerUnavailable as exc:
            raise CommandError(f"{exc}. Nothing was restored; try again.", returncode=3) from None
        records.mark_restored(gate_run, problems)
        if problems:
            for problem in problems:
                self.stderr.write(f"not restored: {problem}")
            self.stderr.write("The drain stays open; fix what is named and run this again.")
            sys.exit(5)
        self.stdout.write("Every recorded worker consumes its queues again; drain closed.")
