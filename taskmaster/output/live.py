"""The live view for a person at a terminal (rich), redrawn in place at every poll.

It writes to the raw stream, not to Django's OutputWrapper, which adds a newline to every
write and would leave a line of each redraw in the scrollback.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import IO, Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from taskmaster.gate.outcome import Outcome
from taskmaster.gate.rules import Blocker, Decision, Gate
from taskmaster.humanize import duration
from taskmaster.output.blockers import SCREENFUL, blocker_table
from taskmaster.output.plain import verdict_lines
from taskmaster.output.streams import SafeStream, safe


class LiveView:
    """A rich live view for a person at a terminal, and a verdict panel at the end."""

    def __init__(
        self, stream: IO[str] | SafeStream, *, with_args: bool = False, color: bool = True
    ) -> None:
        # The raw stream, not Django's OutputWrapper: it adds a newline to every write, which
        # leaves a line of each redraw in the scrollback. Without colour (--no-color), bold
        # and the layout stay: they are not colour.
        self.console = Console(
            file=safe(stream),  # type: ignore[arg-type]
            force_terminal=True,
            no_color=not color,
        )
        self.with_args = with_args
        self.live = Live(
            Text("discovering workers…"), console=self.console, auto_refresh=False, transient=True
        )
        self.live.start()

    def note(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}", highlight=False)

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        self.live.update(self.view(gate, decision, now), refresh=True)

    def view(self, gate: Gate, decision: Decision, now: float) -> Group:
        blocked = Counter(b.worker for b in decision.blockers)
        silent = {b.worker: b.state for b in decision.blockers if not b.name}
        workers = Table(title="Workers", expand=True, title_justify="left")
        for column in ("worker", "recorded queues", "state"):
            workers.add_column(column)
        # The drained workers, then those the broker shows but that do not answer.
        unheard = sorted(w for w, state in silent.items() if state == "silent")
        rows = gate.workers + [w for w in unheard if w not in gate.snapshot]
        for worker in rows[:SCREENFUL]:
            names = ", ".join(sorted(q["name"] for q in gate.snapshot.get(worker, []))) or "-"
            workers.add_row(worker, names, _worker_state(silent.get(worker), blocked[worker]))
        if len(rows) > SCREENFUL:
            workers.add_row(f"… and {len(rows) - SCREENFUL} more", "", "")
        parts: list[Any] = [workers]
        if decision.blockers:
            parts.append(self.blockers(decision.blockers))
        else:
            parts.append(Text("no blockers"))
        parts.append(Text.from_markup(f"time left: [bold]{duration(gate.deadline - now)}[/]"))
        return Group(*parts)

    def blockers(self, blockers: tuple[Blocker, ...]) -> Table:
        table = Table(title="Blockers, worst first", expand=True, title_justify="left")
        for column in ("task", "count", "states", "oldest", "why"):
            table.add_column(column)
        rows, rest = blocker_table(blockers)
        for row in rows:
            count = f"{row.count:,}"
            table.add_row(row.subject, count, row.states_text, duration(row.oldest), row.reason)
        if rest is not None:
            table.add_row(rest.line(), f"{rest.blockers:,}", "", "", "")
        return table

    def finish(self, outcome: Outcome) -> None:
        self.live.stop()
        lines = verdict_lines(outcome, with_args=self.with_args)
        self.console.print(
            Panel(
                Text("\n".join(lines[1:])),
                title=f"[bold]{str(outcome.verdict).upper()}[/] — {lines[0]}",
                border_style="green" if outcome.exit_code == 0 else "red",
            )
        )

    def close(self) -> None:
        self.live.stop()


def _worker_state(silent: str | None, blockers: int) -> str:
    if silent == "unresponsive":
        return "[red]unresponsive[/]"
    if silent == "consuming":
        return "[yellow]still consuming[/]"
    if silent:
        return f"[red]{silent}[/]"
    if blockers:
        return f"[red]drained, {blockers:,} blocker(s)[/]"
    return "[green]drained, safe[/]"
