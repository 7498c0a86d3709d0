"""What a pipeline reads besides the exit code, each written when its environment asks for it.

- ``--report PATH``: the JSON report as a file, an artifact to keep;
- ``GITHUB_STEP_SUMMARY``: a Markdown summary of the gate, appended to the job's summary;
- ``GITHUB_OUTPUT``: ``verdict``, ``exit_code``, ``blockers`` and ``run_id`` for later steps;
- ``GITHUB_ACTIONS``: annotations (``::error::``) for the worst blockers, ten at most.

None of it may change how the gate ended: a file that cannot be written is said, not raised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from taskmaster.exits import ExitCode
from taskmaster.gate.outcome import Outcome
from taskmaster.humanize import duration, some
from taskmaster.output.blockers import blocker_table, worst_first
from taskmaster.output.plain import RESTORE_FAILED, next_steps

SUMMARY_ROWS = 25  # task groups in the summary table: far below GitHub's 1 MiB per step
ANNOTATIONS = 10  # GitHub shows ten per step; the rest are rolled into the last one


def write_ci_outputs(
    outcome: Outcome, *, report: str | None, with_args: bool, env: Mapping[str, str] = os.environ
) -> tuple[list[str], list[str]]:
    """Write what the environment asks for; return (annotation lines, problems to say)."""
    problems: list[str] = []

    def write(path: str, text: str, what: str, *, mode: str = "a") -> None:
        try:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open(mode, encoding="utf-8") as file:
                file.write(text)
        except OSError as exc:
            problems.append(f"cannot write {what} to {path}: {exc}")

    if report:
        data = json.dumps(outcome.as_json(with_args=with_args), indent=2, sort_keys=True)
        write(report, data + "\n", "the report", mode="w")
    if env.get("GITHUB_STEP_SUMMARY"):
        write(env["GITHUB_STEP_SUMMARY"], summary_markdown(outcome), "the step summary")
    if env.get("GITHUB_OUTPUT"):
        write(env["GITHUB_OUTPUT"], step_outputs(outcome), "the step outputs")
    annotations = annotation_lines(outcome) if env.get("GITHUB_ACTIONS") else []
    return annotations, problems


def step_outputs(outcome: Outcome) -> str:
    run_id = "" if outcome.run_id is None else str(outcome.run_id)
    return (
        f"verdict={outcome.verdict}\nexit_code={outcome.exit_code}\n"
        f"blockers={len(outcome.blockers)}\nrun_id={run_id}\n"
    )


def summary_markdown(outcome: Outcome) -> str:
    icon = "✅" if outcome.exit_code == 0 else "⛔"
    kind = " (dry run)" if outcome.dry_run else ""
    run = f", gate run #{outcome.run_id}" if outcome.run_id else ""
    lines = [f"### {icon} Deploy gate: {outcome.verdict}{kind} — exit {outcome.exit_code}{run}", ""]
    if outcome.failure is not None:
        lines += [f"**Error:** {_cell(str(outcome.failure))}", ""]
    drained = some([f"`{w.hostname}`" for w in outcome.workers], 20) or "none"
    lines += [f"**Workers drained ({len(outcome.workers)}):** {drained}", ""]
    if outcome.broker_count:
        lines += [f"**Broker:** {_cell(outcome.broker_count['summary'])}", ""]
    if outcome.out_of_scope:
        lines += [f"**Out of scope:** {len(outcome.out_of_scope)} worker(s)", ""]
    if outcome.blockers:
        rows, rest = blocker_table(outcome.blockers, rows=SUMMARY_ROWS)
        lines += ["| task | blockers | states | oldest | why |", "|---|---:|---|---|---|"]
        lines += [
            f"| `{row.subject}` | {row.count:,} | {row.states_text} | {duration(row.oldest)} | "
            f"{_cell(row.reason)} |"
            for row in rows
        ]
        if rest is not None:
            lines.append(f"| {rest.line()} | {rest.blockers:,} | | | see the JSON report |")
        lines.append("")
    if outcome.restore_problems:
        lines += [f"- not restored: {_cell(p)}" for p in outcome.restore_problems]
        lines += ["", RESTORE_FAILED]
    elif outcome.failure is None or outcome.exit_code == ExitCode.GATE_FAILED:
        lines += [step.replace("tasks above", "tasks in the table") for step in next_steps(outcome)]
    return "\n".join(lines) + "\n\n"


def annotation_lines(outcome: Outcome) -> list[str]:
    """``::error::`` lines for the worst blockers (GitHub shows them on the run's page)."""
    if outcome.failure is not None and not outcome.blockers:
        return [f"::error title=Deploy gate::{_escape(str(outcome.failure))}"]
    level = "warning" if outcome.exit_code == 0 or outcome.dry_run else "error"
    # Ten lines: the last one counts the rest when there are more.
    fit = len(worst_first(outcome.blockers)) <= ANNOTATIONS
    rows, rest = blocker_table(outcome.blockers, rows=ANNOTATIONS if fit else ANNOTATIONS - 1)
    items = [row.line() for row in rows]
    if rest is not None:
        items.append(f"{rest.line()}: see the report")
    return [f"::{level} title=Deploy gate blocker::{_escape(item)}" for item in items]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _escape(text: str) -> str:
    # GitHub's escaping of workflow command data: %, CR and LF.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
