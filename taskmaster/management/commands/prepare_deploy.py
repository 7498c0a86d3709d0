"""``./manage.py prepare_deploy``: drain the Celery workers and say whether a deploy is safe."""

from __future__ import annotations

import json
import sys
from argparse import SUPPRESS, ArgumentParser
from typing import TYPE_CHECKING, Any

from taskmaster.api import prepare_deploy
from taskmaster.conf import app_settings
from taskmaster.drain.request import GateRequest
from taskmaster.exits import ConfigurationError
from taskmaster.gate.outcome import Outcome
from taskmaster.gate.scope import Scope
from taskmaster.management.common import (
    SafeCommand,
    failures_logged_to,
    positive_seconds,
    stop_on_signals,
)
from taskmaster.output.ci import write_ci_outputs
from taskmaster.output.plain import PlainLines
from taskmaster.output.streams import SafeStream

if TYPE_CHECKING:
    from taskmaster.output.live import LiveView


class Command(SafeCommand):
    help = (
        "Stop every Celery worker fetching new tasks, wait until none runs a task that a "
        "stop would lose, then clear the deploy (exit 0) or restore the consumers and list "
        "the blockers (exit 1). Other exits: 2 a configuration error, 3 the broker out of "
        "reach, 4 another drain open, 5 a restore incomplete, 6 the gate failed (consumers "
        "restored), 128+N stopped by signal N. Nothing is touched on 2 to 4."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--timeout",
            type=positive_seconds,
            help="seconds to wait for blockers to end "
            f"(default: TASKMASTER['TIMEOUT'], now {app_settings.TIMEOUT})",
        )
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            help="seconds between two full polls; between them the gate watches its blockers "
            f"(default: TASKMASTER['INTERVAL'], now {app_settings.INTERVAL})",
        )
        parser.add_argument(
            "--hold",
            type=positive_seconds,
            help="after a clear verdict, seconds the workers stay drained before their lease "
            f"runs out (default: TASKMASTER['HOLD'], now {app_settings.HOLD})",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print one JSON report on stdout, whatever happens; human output goes to stderr",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="look once and say what would block, without cancelling any consumer",
        )
        parser.add_argument(
            "--show-args",
            action="store_true",
            help="show task arguments as bounded reprs "
            f"(default: TASKMASTER['SHOW_TASK_ARGS'], now {app_settings.SHOW_TASK_ARGS})",
        )
        parser.add_argument(
            "--allow-no-workers",
            action="store_true",
            help="clear when no worker answers although earlier gates drained some (a fleet "
            "down on purpose), or none matches --worker/--queue (a pod whose worker has "
            "stopped); without it, either is exit 2. Never over a worker the broker shows "
            "alive but silent",
        )

        parser.add_argument(
            "--worker",
            action="append",
            default=[],
            metavar="PATTERN",
            dest="worker_patterns",
            help="drain only the workers whose node name matches this shell-style pattern "
            '(repeatable; e.g. "*@$HOSTNAME" in a Kubernetes preStop hook)',
        )
        parser.add_argument(
            "--queue",
            action="append",
            default=[],
            metavar="NAME",
            dest="queue_names",
            help="drain only the workers that consume this queue (repeatable); with --worker, "
            "a worker must match both",
        )
        parser.add_argument(
            "--fail-fast",
            action="store_true",
            help="give up at once when a running blocker with no time limit has already run "
            "longer than the time left",
        )
        parser.add_argument(
            "--report",
            metavar="PATH",
            help="also write the JSON report to this file (a CI artifact), whatever happens",
        )
        # Set by the admin's Prepare deploy button, which runs this command in the background.
        parser.add_argument("--requested-by", default="", help=SUPPRESS)
        parser.add_argument("--requested-from", default="", help=SUPPRESS)

    def run_from_argv(self, argv: list[str]) -> None:
        self.json_requested = "--json" in argv
        super().run_from_argv(argv)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        usage_error = parser.error

        def error(message: str) -> Any:
            # A bad option is exit 2 like any configuration error, and a CI job that asked
            # for JSON still gets its one object on stdout.
            if getattr(self, "json_requested", False):
                failed = Outcome.failed(ConfigurationError(message))
                self.stdout.write(_dumps(failed.as_json()))
            return usage_error(message)

        parser.error = error  # type: ignore[method-assign]
        return parser

    def handle(
        self,
        *,
        timeout: float | None,
        interval: float | None,
        hold: float | None,
        as_json: bool,
        dry_run: bool,
        show_args: bool,
        allow_no_workers: bool,
        requested_by: str,
        requested_from: str,
        worker_patterns: list[str],
        queue_names: list[str],
        fail_fast: bool,
        report: str | None,
        **options: Any,
    ) -> None:
        with_args = show_args or app_settings.SHOW_TASK_ARGS
        human = self.raw(self.stderr if as_json else self.stdout)
        request = GateRequest(
            timeout,
            interval,
            hold,
            dry_run,
            allow_no_workers,
            requested_by,
            requested_from,
            Scope(tuple(worker_patterns), tuple(queue_names)),
            fail_fast,
        )
        errors = self.raw(self.stderr)
        with stop_on_signals() as stop, failures_logged_to(errors):
            view = human_output(
                human, errors=errors, with_args=with_args, color=not options.get("no_color")
            )
            try:
                outcome = prepare_deploy(request, view, stop)
            finally:
                view.close()
            view.finish(outcome)
            annotations, problems = write_ci_outputs(outcome, report=report, with_args=with_args)
            for line in annotations:
                human.write(line + "\n")
            for problem in problems:
                errors.write(problem + "\n")
            if as_json:
                self.stdout.write(_dumps(outcome.as_json(with_args=with_args)))
        if outcome.exit_code:
            sys.exit(outcome.exit_code)


def human_output(
    stream: SafeStream, *, errors: SafeStream, with_args: bool, color: bool = True
) -> PlainLines | LiveView:
    """A live view on a terminal (in colour unless ``--no-color``), plain lines otherwise
    (CI, pipes, files: never coloured)."""
    if stream.isatty():
        from taskmaster.output.live import LiveView  # rich is loaded only for a person's terminal

        return LiveView(stream, with_args=with_args, color=color)
    return PlainLines(stream, errors=errors, with_args=with_args)


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True)
