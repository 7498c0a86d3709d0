"""The gate's Prometheus metrics, read from the database (docs/observability.md).

Every number comes from the ``GateRun`` and ``RecordedBlocker`` rows, never from a worker or
the broker, so every process gives the same answer: a gate that pushes them as it ends, a web
process that serves them to a scraper. A handful of aggregate queries, whatever the number of
runs recorded.

This module imports ``prometheus_client`` (the extra ``metrics``): import it only once the
metrics are wanted (``export.py`` and ``views.py`` do, inside their functions).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from taskmaster.gate.rules import Verdict
from taskmaster.models import DrainedWorker, GateRun, GateRunQuerySet, RecordedBlocker

# Upper bounds of the duration histogram, in seconds: a gate that clears at once, one that
# waits out a poll or two, up to the default TIMEOUT (600 s) and beyond.
BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800)


def worker_label(state: str) -> str:
    """The ``task`` label of a blocker that is a worker, not a task (a worker that does not
    answer, one the broker sees consuming): no task name has parentheses or a space."""
    return f"(worker {state})"


def finished() -> GateRunQuerySet:
    """Runs with a verdict. A dry run records no GateRun, so it is never among them."""
    return GateRun.objects.filter(finished_at__isnull=False).exclude(verdict="").order_by()


def families(now: datetime) -> list[Metric]:
    """Every metric, read from the database now (raises ``DatabaseError``)."""
    return [
        *per_verdict(),
        blockers(),
        blocked_in_a_row(),
        *drain(now),
    ]


def per_verdict() -> list[Metric]:
    """Runs, their durations and the latest of each verdict: one grouped query, the histogram's
    buckets counted by the database (a run is in every bucket its duration fits under)."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    under = {
        f"le_{i}": Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
        for i, bound in enumerate(BUCKETS)
    }
    rows: dict[str, dict[str, Any]] = {
        row["verdict"]: dict(row)
        for row in finished()
        .alias(duration=duration)
        .values("verdict")
        .annotate(runs=Count("pk"), seconds=Sum("duration"), latest=Max("finished_at"), **under)
    }
    runs = CounterMetricFamily(
        "taskmaster_gate_runs", "Gate runs finished, by verdict.", labels=["verdict"]
    )
    durations = HistogramMetricFamily(
        "taskmaster_gate_duration_seconds",
        "How long finished gate runs took, by verdict.",
        labels=["verdict"],
    )
    latest = GaugeMetricFamily(
        "taskmaster_last_verdict_timestamp_seconds",
        "When the latest gate run of each verdict finished (Unix time).",
        labels=["verdict"],
    )
    # Every verdict, 0 included: rate() and increase() need a series before its first run.
    for verdict in Verdict.values:
        row = rows.get(verdict) or {"runs": 0, "seconds": None}
        runs.add_metric([verdict], row["runs"])
        # le="1.0", as prometheus_client writes the bounds of its own histograms.
        buckets = [(repr(float(b)), row.get(f"le_{i}", 0)) for i, b in enumerate(BUCKETS)]
        buckets.append(("+Inf", row["runs"]))
        seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
        durations.add_metric([verdict], buckets, seconds)
        if row.get("latest") is not None:  # no sample for a verdict never reached
            latest.add_metric([verdict], row["latest"].timestamp())
    return [runs, durations, latest]


def blockers() -> Metric:
    """What still blocked at the verdict of the latest finished run, per task name (none after
    a clear)."""
    gauge = GaugeMetricFamily(
        "taskmaster_gate_blockers",
        "Blockers at the verdict of the latest finished gate run, by task.",
        labels=["task"],
    )
    run = finished().order_by("-finished_at", "-pk").values_list("pk", flat=True).first()
    if run is None:
        return gauge
    rows = (
        RecordedBlocker.objects.filter(run=run, at_verdict=True)
        .order_by()
        .values("name", "state")
        .annotate(n=Count("pk"))
    )
    counts: Counter[str] = Counter()
    for row in rows:
        counts[row["name"] or worker_label(row["state"])] += row["n"]
    for task, n in sorted(counts.items()):
        gauge.add_metric([task], n)
    return gauge


def blocked_in_a_row() -> Metric:
    """How many of the latest finished runs were blocked, back to the latest that was not."""
    other = (
        finished()
        .exclude(verdict=Verdict.BLOCKED)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    blocked = finished().filter(verdict=Verdict.BLOCKED)
    if other is not None:
        blocked = blocked.filter(finished_at__gt=other)
    return GaugeMetricFamily(
        "taskmaster_gate_blocked_in_a_row",
        "Latest finished gate runs that were blocked, in a row.",
        value=blocked.count(),
    )


def drain(now: datetime) -> list[Metric]:
    """The drain a resume would put back now: open drains, else a clear whose hold runs."""
    runs = GateRun.objects.to_resume(now)
    workers = {hostname for run in runs for hostname in run.snapshot}
    # An open run claims its workers before it drains them (and records their snapshot): at
    # its start they are claimed, not yet in the snapshot.
    workers.update(
        DrainedWorker.objects.filter(run__in=[r.pk for r in runs]).values_list(
            "hostname", flat=True
        )
    )
    opened = GaugeMetricFamily(
        "taskmaster_drain_opened_timestamp_seconds",
        "When the oldest drain holding workers started (Unix time).",
    )
    if runs:
        opened.add_metric([], min(run.started_at for run in runs).timestamp())
    # A clear's hold ends by itself: no signal, so no push, says so. Its end, pushed with it,
    # lets an alert tell a pushed hold that is over from a drain still open.
    held_until = GaugeMetricFamily(
        "taskmaster_drain_held_until_timestamp_seconds",
        "When the hold of the latest clear verdict ends (Unix time), while it holds workers.",
    )
    held = next((run.lease_until for run in runs if not run.is_open and run.lease_until), None)
    if held is not None:
        held_until.add_metric([], held.timestamp())
    return [
        GaugeMetricFamily(
            "taskmaster_drain_open",
            "1 while a drain holds workers (open, or a clear still held), else 0.",
            value=1 if runs else 0,
        ),
        opened,
        held_until,
        GaugeMetricFamily(
            "taskmaster_workers_drained",
            "Workers held drained now.",
            value=len(workers),
        ),
    ]


class GateRunCollector:
    """Reads the database at each collect (the view's registry: each scrape reads anew)."""

    def collect(self) -> list[Metric]:
        return families(timezone.now())


class Reading:
    """One reading of the database, taken once: a push and a textfile written for the same
    signal show the same numbers, for one set of queries."""

    def __init__(self) -> None:
        self.metrics = families(timezone.now())

    def collect(self) -> list[Metric]:
        return self.metrics


def registry(collector: GateRunCollector | Reading | None = None) -> CollectorRegistry:
    """A registry of its own (never prometheus_client's global one, which holds the process's
    own metrics): the gate's metrics, read at each collect unless given a ``Reading``."""
    fresh = CollectorRegistry()
    fresh.register(collector or GateRunCollector())
    return fresh
