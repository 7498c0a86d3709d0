"""The gate's Prometheus metrics end to end: real gates on RabbitMQ with real workers push them
to a real Pushgateway (behind basic auth) and write them for a real node_exporter, the
project serves them at /metrics/taskmaster, and a real Prometheus scrapes all three
(tests/support/prometheus.py). What Prometheus answers is what an alert would see.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.metrics import export
from taskmaster.models import GateRun
from tests.support.lab import Lab, wait_for
from tests.support.prometheus import Stack, free_port, prometheus_stack
from tests.support.web import site_on

TOKEN = "scrape-token-9e2a"
VIEW = "/metrics/taskmaster"
REPORT = "project.tasks.generate_report"
BLOCKED = ("--timeout", "3", "--interval", "1")
CLEAR = ("--timeout", "30", "--interval", "1")
# The same numbers, three ways: pushed (the job label the gate pushed with), written for
# node_exporter (job "node"), served by the view (job "django").
SOURCES = ("taskmaster", "node", "django")
VERDICTS = ("clear", "blocked", "interrupted", "error")
INF = float("inf")


@pytest.fixture(scope="module")
def stack(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One Prometheus, Pushgateway and node_exporter for this module, in each process."""
    view = urlsplit(live_server.url).netloc
    folder = tmp_path_factory.mktemp("prometheus")
    with prometheus_stack(folder, view=view, view_path=VIEW, token=TOKEN) as started:
        yield started


@pytest.fixture
def metrics(stack: Stack, settings: Any) -> Stack:
    """The stack, with nothing left from an earlier test, and the view (served by this
    process's live server) open to the bearer of the token Prometheus sends."""
    stack.reset()
    settings.TASKMASTER = {**settings.TASKMASTER, "METRICS": {"TOKEN": TOKEN}}
    return stack


def gate_env(stack: Stack) -> dict[str, str]:
    return {
        "TASKMASTER_PUSHGATEWAY": stack.pushgateway_url,
        "TASKMASTER_METRICS_TEXTFILE": str(stack.textfile),
    }


def runs(**counts: int) -> dict[str, float]:
    return {verdict: float(counts.get(verdict, 0)) for verdict in VERDICTS}


def expect(stack: Stack, expected: dict[str, tuple[str, dict[str, float]]]) -> None:
    """Wait until Prometheus has these values from every source: {metric: (label, values)}.
    In order: the first metric waits for the new reading, so that an empty expectation after
    it ("no blocker") is not met by a source that has not caught up."""
    for job in SOURCES:
        for metric, (label, values) in expected.items():
            stack.wait(f'{metric}{{job="{job}"}}', values, by=label)


def textfile(path: Path) -> dict[str, dict[str, float]]:
    """The textfile as prometheus_client's parser reads it: sample name -> {labels: value}."""
    samples: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            key = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[key] = sample.value
    return samples


def buckets(stack: Stack, job: str, verdict: str, *bounds: float) -> list[float | None]:
    """These buckets of the duration histogram. By value: the Pushgateway and node_exporter
    (Go) write le="1", prometheus_client le="1.0", and Prometheus 2 keeps them as written."""
    expr = f'taskmaster_gate_duration_seconds_bucket{{job="{job}",verdict="{verdict}"}}'
    seen = {float(le): value for le, value in stack.values(expr, by="le").items()}
    return [seen.get(bound) for bound in bounds]


def scrape_view(url: str, token: str | None = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(url + VIEW)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_blocked_then_a_clear_gate_as_prometheus_scrapes_them(
    lab: Lab, metrics: Stack, live_server: Any
) -> None:
    w1 = lab.start_busy_worker("w1")

    blocked = lab.manage("prepare_deploy", *BLOCKED, env=gate_env(metrics))

    assert blocked.code == 1, blocked.text
    assert "metrics:" not in blocked.text  # pushed and written without a word
    first = GateRun.objects.get()
    assert first.finished_at is not None
    expect(
        metrics,
        {
            "taskmaster_gate_runs_total": ("verdict", runs(blocked=1)),
            "taskmaster_gate_duration_seconds_count": ("verdict", runs(blocked=1)),
            "taskmaster_gate_blockers": ("task", {REPORT: 1.0}),
            "taskmaster_gate_blocked_in_a_row": ("", {"": 1.0}),
            "taskmaster_last_verdict_timestamp_seconds": (
                "verdict",
                {"blocked": first.finished_at.timestamp()},
            ),
            "taskmaster_drain_open": ("", {"": 0.0}),  # restored: nothing held
            "taskmaster_workers_drained": ("", {"": 0.0}),
            "taskmaster_drain_opened_timestamp_seconds": ("", {}),
            "taskmaster_drain_held_until_timestamp_seconds": ("", {}),
        },
    )
    # The blocked run took at least its 3 s timeout: not in the bucket under 1 s, in 900 s.
    for job in SOURCES:
        wait_for(lambda job=job: buckets(metrics, job, "blocked", 1.0, 900.0, INF) == [0, 1, 1])

    task = lab.active_tasks(w1.name)[0]["id"]
    lab.app.control.revoke(task, terminate=True)
    wait_for(lambda: not lab.active_tasks(w1.name))
    clear = lab.manage("prepare_deploy", *CLEAR, env=gate_env(metrics))

    assert clear.code == 0, clear.text
    second = GateRun.objects.latest("started_at")
    assert second.verdict == "clear" and second.finished_at is not None
    assert second.lease_until is not None
    expect(
        metrics,
        {
            "taskmaster_gate_runs_total": ("verdict", runs(blocked=1, clear=1)),
            "taskmaster_gate_duration_seconds_count": ("verdict", runs(blocked=1, clear=1)),
            "taskmaster_gate_blockers": ("task", {}),  # none after a clear
            "taskmaster_gate_blocked_in_a_row": ("", {"": 0.0}),
            "taskmaster_last_verdict_timestamp_seconds": (
                "verdict",
                {
                    "blocked": first.finished_at.timestamp(),
                    "clear": second.finished_at.timestamp(),
                },
            ),
            # The clear's hold keeps w1 drained until the deploy restarts it.
            "taskmaster_drain_open": ("", {"": 1.0}),
            "taskmaster_workers_drained": ("", {"": 1.0}),
            "taskmaster_drain_opened_timestamp_seconds": (
                "",
                {"": second.started_at.timestamp()},
            ),
            "taskmaster_drain_held_until_timestamp_seconds": (
                "",
                {"": second.lease_until.timestamp()},
            ),
        },
    )
    written = textfile(metrics.textfile)
    assert written["taskmaster_gate_runs_total"] == {
        f"verdict={verdict}": float(verdict in ("blocked", "clear")) for verdict in VERDICTS
    }
    assert "taskmaster_gate_blockers" not in written
    assert written["taskmaster_drain_open"] == {"": 1.0}
    assert [p.name for p in metrics.textfile.parent.iterdir()] == ["taskmaster.prom"]

    # A dry run records no gate run: it counts nowhere.
    lab.manage("prepare_deploy", "--dry-run", env=gate_env(metrics))
    assert GateRun.objects.count() == 2
    status, body = scrape_view(live_server.url)
    assert status == 200
    assert 'taskmaster_gate_runs_total{verdict="clear"} 1.0' in body


def test_the_view_refuses_without_the_token_and_answers_with_the_broker_dead(
    lab: Lab, live_server: Any, settings: Any
) -> None:
    settings.TASKMASTER = {**settings.TASKMASTER, "METRICS": {"TOKEN": TOKEN}}
    GateRun.objects.create(timeout=600, interval=20, snapshot={"w1@lab": []})  # an open drain
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}//"  # nothing listens there

    with site_on(lab, broker_url=dead):
        refused = scrape_view(live_server.url, token=None)
        wrong = scrape_view(live_server.url, token="not-the-token")
        answered = scrape_view(live_server.url)

    assert refused == (403, "")
    assert wrong == (403, "")
    status, body = answered
    assert status == 200
    assert "taskmaster_drain_open 1.0" in body
    assert "taskmaster_workers_drained 1.0" in body


def test_a_pushgateway_that_refuses_the_credentials_is_said_with_its_status(
    metrics: Stack, db: None
) -> None:
    wrong = metrics.pushgateway_url.replace(":gate-push-pw@", ":not-the-password@")
    notes: list[str] = []

    with override_settings(
        TASKMASTER={**django_settings.TASKMASTER, "METRICS": {"PUSHGATEWAY": wrong}}
    ):
        export.export(notes.append)

    assert notes == [
        f"metrics: could not push to http://gate:**@{metrics.pushgateway.address}: "
        "HTTP 401 Unauthorized"
    ]


@pytest.mark.parametrize(("busy", "code"), [(False, 0), (True, 1)])
def test_a_pushgateway_that_is_down_changes_no_exit_and_is_said_without_its_password(
    lab: Lab, busy: bool, code: int
) -> None:
    if busy:
        lab.start_busy_worker("w1")
    else:
        lab.start_worker("w1")
    port = free_port()  # nothing listens there: connection refused
    env = {"TASKMASTER_PUSHGATEWAY": f"http://deployer:secret@127.0.0.1:{port}"}

    result = lab.manage("prepare_deploy", *(BLOCKED if busy else CLEAR), "--json", env=env)

    assert result.code == code, result.text
    sentence = f"metrics: could not push to http://deployer:**@127.0.0.1:{port}: Connection refused"
    # Once as the drain opened, once at the verdict: to the person, in the report and record.
    assert result.err.count(sentence) == 2, result.err
    assert result.report()["notes"].count(sentence) == 2
    run = GateRun.objects.get()
    assert run.report["notes"].count(sentence) == 2
    log = (lab.var_dir / "taskmaster.log").read_text()
    assert f"WARNING taskmaster: {sentence}" in log
    assert "Traceback" not in log
    for text in (result.out, result.err, json.dumps(run.report), log):
        assert "secret" not in text
