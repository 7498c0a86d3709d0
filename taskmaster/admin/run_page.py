"""What a gate run's page shows of a big run, in bounded size: blockers grouped by task and
paged, the snapshot as a table, the JSON report shortened behind a disclosure.

A gate that gave up on a backlog records thousands of blockers (one row per task and worker,
whatever states it went through); the page must stay a page. Every query here is bounded:
a few aggregates and one page of rows, however big the run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, Min, Q
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from taskmaster.gate.inspection import state_rank
from taskmaster.models import RecordedBlocker

BLOCKERS_PER_PAGE = 100
GROUPS_SHOWN = 50  # task names in the summary; a run rarely has more than a dozen
REPORT_ITEMS = 20  # blockers (and tasks) the report on the page shows; the download has all


@dataclass(frozen=True)
class BlockerGroup:
    """The blockers of one task name in one run: how many, in which states, on how many
    workers, how many were still blocking at the verdict, and the longest runtime."""

    name: str
    classification: str
    count: int
    states: tuple[tuple[str, int], ...]  # (last state seen, blockers), running first
    workers: int
    at_verdict: int
    longest: float | None


def blocker_groups(run_id: int) -> tuple[list[BlockerGroup], int]:
    """Task names worst first (most still blocking at the verdict), and how many more."""
    blockers = RecordedBlocker.objects.filter(run_id=run_id).exclude(name="").order_by()
    totals = list(
        blockers.values("name")
        .annotate(
            count=Count("pk"),
            at_verdict=Count("pk", filter=Q(at_verdict=True)),
            workers=Count("worker", distinct=True),
            longest=Max("runtime_seconds"),
            classification=Min("classification"),
        )
        .order_by("-at_verdict", "-count", "name")
    )
    shown = totals[:GROUPS_SHOWN]
    states: dict[str, dict[str, int]] = {}
    names = [row["name"] for row in shown]
    for row in blockers.filter(name__in=names).values("name", "state").annotate(n=Count("pk")):
        states.setdefault(row["name"], {})[row["state"]] = row["n"]
    groups = [
        BlockerGroup(
            name=row["name"],
            classification=row["classification"],
            count=row["count"],
            states=tuple(
                (s, n)
                for s, n in sorted(
                    states.get(row["name"], {}).items(), key=lambda i: state_rank(i[0])
                )
            ),
            workers=row["workers"],
            at_verdict=row["at_verdict"],
            longest=row["longest"],
        )
        for row in shown
    ]
    return groups, len(totals) - len(shown)


def worker_blockers(run_id: int) -> list[RecordedBlocker]:
    """Workers that blocked the run themselves (did not answer, two under one name): few."""
    return list(RecordedBlocker.objects.filter(run_id=run_id, name="").order_by("worker"))


def blocker_page(run_id: int, number: str | None) -> Page[RecordedBlocker]:
    """One page of the run's blockers, those still blocking at the verdict first."""
    rows = RecordedBlocker.objects.filter(run_id=run_id).order_by(
        "-at_verdict", "name", "first_seen", "pk"
    )
    return Paginator(rows, BLOCKERS_PER_PAGE).get_page(number)


def report_excerpt(report: dict[str, Any]) -> tuple[str, int]:
    """The report as indented JSON with its long lists cut short, and how much was cut."""
    shown = dict(report)
    cut = 0
    for key in ("blockers", "tasks"):
        items = report.get(key) or []
        if len(items) > REPORT_ITEMS:
            cut += len(items) - REPORT_ITEMS
            more = f"… {len(items) - REPORT_ITEMS:,} more: download the whole report"
            shown[key] = [*items[:REPORT_ITEMS], more]
    return json.dumps(shown, indent=2, sort_keys=True), cut


def snapshot_table(snapshot: dict[str, list[dict[str, Any]]]) -> SafeString | str:
    """Each drained worker's queues as a restore declares them again."""
    if not snapshot:
        return "No worker was drained."
    rows = []
    for worker, queues in sorted(snapshot.items()):
        if not queues:
            rows.append((worker, "consumed nothing", "", "", ""))
        for q in sorted(queues, key=lambda q: q["name"]):
            exchange = q.get("exchange") or {}
            rows.append(
                (
                    worker,
                    q["name"],
                    f"{exchange.get('name') or '(default)'} ({exchange.get('type') or 'direct'})",
                    q.get("routing_key") or "",
                    _declaration(q),
                )
            )
    body = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
    )
    return format_html(
        "<table class='tm-table tm-snapshot'><thead><tr><th>worker</th><th>queue</th>"
        "<th>exchange</th><th>routing key</th><th>declared</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        body,
    )


def _declaration(queue: dict[str, Any]) -> str:
    flags = [name for name in ("durable", "auto_delete", "exclusive") if queue.get(name)]
    arguments = queue.get("queue_arguments") or {}
    flags += [f"{key}={value}" for key, value in sorted(arguments.items())]
    return ", ".join(flags) or "-"
