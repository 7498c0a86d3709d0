"""Renders a gate run: a rich live view on a terminal, plain timestamped lines elsewhere.

The core returns data; this is the only module that formats it for people. ``--json``
output is ``Outcome.as_json()`` dumped by the command.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskmaster.cluster import queue_names
from taskmaster.drain import Outcome
from taskmaster.gate import Blocker, Decision, Gate, Verdict

NEXT_STEP = {
    Verdict.CLEAR: (
        "Safe to stop the workers: deploy now. Consumers stay cancelled until the workers "
        "restart. Deploy called off? Run ./manage.py resume_consumers."
    ),
    Verdict.BLOCKED: (
        "Do not deploy now: consumers are restored. Make the tasks below acks_late and "
        "idempotent, or bound them with a short time_limit, then try again."
    ),
    Verdict.INTERRUPTED: "The gate was stopped; consumers are restored. Nothing else to do.",
    Verdict.ERROR: "The gate could not finish; see the notes above.",
}
RESTORE_FAILED = (
    "Some consumers could not be restored (listed). Fix what is named, then run "
    "./manage.py resume_consumers; the drain stays open until it succeeds."
)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = max(0, int(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


def blocker_line(b: Blocker, *, with_args: bool) -> str:
    if not b.name:  # the worker itself blocks
        return f"{b.worker} ({b.state}): {b.reason}"
    what = f"{b.name}[{b.id}]"
    runtime = f", running {seconds(b.runtime_seconds)}" if b.runtime_seconds is not None else ""
    kind = f", {b.classification}" if b.classification else ""
    args = f", args {b.args}" if with_args and b.args else ""
    return f"{what} on {b.worker} ({b.state}{runtime}{kind}{args}): {b.reason}"


def verdict_lines(outcome: Outcome, *, with_args: bool) -> list[str]:
    head = f"verdict: {outcome.verdict} (exit {outcome.exit_code}), gate run #{outcome.run.pk}"
    lines = [head]
    lines += [f"blocker: {blocker_line(b, with_args=with_args)}" for b in outcome.blockers]
    lines += [f"not restored: {p}" for p in outcome.restore_problems or []]
    lines.append(RESTORE_FAILED if outcome.restore_problems else NEXT_STEP[outcome.verdict])
    return lines


class PlainReport:
    """Timestamped lines for CI logs and pipes."""

    def __init__(self, stream: IO[str], *, with_args: bool = False) -> None:
        self.stream = stream
        self.with_args = with_args

    def line(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.stream.write(f"{stamp} {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.line(text)

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        left = seconds(gate.deadline - now)
        self.line(
            f"poll: {len(gate.workers)} worker(s), {len(decision.blockers)} blocker(s), {left} left"
        )
        for b in decision.blockers:
            self.line(f"  {blocker_line(b, with_args=self.with_args)}")

    def finish(self, outcome: Outcome) -> None:
        for text in verdict_lines(outcome, with_args=self.with_args):
            self.line(text)

    def close(self) -> None:
        self.stream.flush()


class LiveReport:
    """A rich live view for a person at a terminal, and a verdict panel at the end."""

    def __init__(self, stream: IO[str], *, with_args: bool = False) -> None:
        self.console = Console(file=stream, force_terminal=True)
        self.with_args = with_args
        self.live = Live(Text("discovering workers…"), console=self.console, auto_refresh=False)
        self.live.start()

    def note(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}")

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        self.live.update(self.view(gate, decision, now), refresh=True)

    def view(self, gate: Gate, decision: Decision, now: float) -> Group:
        by_worker: dict[str, list[Blocker]] = {}
        for b in decision.blockers:
            by_worker.setdefault(b.worker, []).append(b)
        workers = Table(title="Workers", expand=True)
        for column in ("worker", "recorded queues", "state"):
            workers.add_column(column)
        for worker in gate.workers:
            state = _worker_state(by_worker.get(worker, []))
            names = ", ".join(sorted(queue_names(gate.snapshot[worker]))) or "-"
            workers.add_row(worker, names, state)
        blockers = Table(title="Blockers", expand=True)
        for column in ("task", "worker", "state", "running", "why"):
            blockers.add_column(column)
        for b in decision.blockers:
            task = f"{b.name}\n[dim]{b.id}[/]" if b.name else "-"
            blockers.add_row(task, b.worker, b.state, seconds(b.runtime_seconds), b.reason)
        left = f"time left: [bold]{seconds(gate.deadline - now)}[/]"
        return Group(workers, blockers if decision.blockers else Text("no blockers"), left)

    def finish(self, outcome: Outcome) -> None:
        self.live.stop()
        lines = verdict_lines(outcome, with_args=self.with_args)
        ok = outcome.exit_code == 0
        self.console.print(
            Panel(
                "\n".join(lines[1:]),
                title=f"[bold]{str(outcome.verdict).upper()}[/] — {lines[0]}",
                border_style="green" if ok else "red",
            )
        )

    def close(self) -> None:
        self.live.stop()


def _worker_state(blockers: list[Blocker]) -> str:
    states = {b.state for b in blockers}
    if "unresponsive" in states:
        return "[red]unresponsive[/]"
    if "consuming" in states:
        return "[yellow]still consuming[/]"
    if blockers:
        return f"[red]drained, {len(blockers)} blocker(s)[/]"
    return "[green]drained, safe[/]"


def human_report(stream: Any, *, with_args: bool) -> PlainReport | LiveReport:
    """A live view on a terminal, plain lines otherwise (CI, pipes, files)."""
    isatty = getattr(stream, "isatty", lambda: False)
    if isatty():
        return LiveReport(stream, with_args=with_args)
    return PlainReport(stream, with_args=with_args)
