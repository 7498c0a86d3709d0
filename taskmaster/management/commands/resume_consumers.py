"""``./manage.py resume_consumers``: put back the consumers a drain cancelled."""

from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any

from taskmaster.drain.recovery import resume_consumers
from taskmaster.management.common import SafeCommand, failures_logged_to, stop_on_signals


class Command(SafeCommand):
    help = (
        "Restore the consumers of every open drain (a killed gate, an exit 5), or of the latest "
        "gate run if it was a clear verdict whose deploy was called off; release the workers' "
        "drain lease, verify, and close the drain. Safe to run twice."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--run",
            type=int,
            help="restore this gate run (its number, as the gate and the admin show it) instead "
            "(default: every open drain, else the latest gate run if its clear verdict still "
            "holds the workers)",
        )
        parser.add_argument(
            "--ignore-missing",
            action="store_true",
            help="close the drain even if some recorded workers do not answer (they are gone "
            "for good: a restart gives them their configured queues)",
        )

    def handle(self, *, run: int | None, ignore_missing: bool, **options: Any) -> None:
        # A stop signal waits for the restore: cutting it short is what this command repairs.
        with stop_on_signals(), failures_logged_to(self.raw(self.stderr)):
            result = resume_consumers(run, ignore_missing=ignore_missing, say=self.stdout.write)
        if result.error:
            self.stderr.write(result.error)
        for problem in result.problems:
            self.stderr.write(f"not restored: {problem}")
        if result.problems:
            self.stderr.write("The drain stays open; fix what is named and run this again.")
        elif result.restored:
            self.stdout.write("Drain closed: every worker consumes the queues it recorded again.")
        if result.exit_code:
            sys.exit(result.exit_code)
