"""The Prometheus metrics read from gate runs in the database: the numbers, the exposition
(checked by promtool), the view's doors, and the receivers' failures told, never raised.

The end to end (real gates pushing to a real Pushgateway, Prometheus scraping) is
tests/integration/test_metrics.py.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from taskmaster.gate.rules import Verdict
from taskmaster.metrics import export
from taskmaster.metrics.collector import BUCKETS, registry
from taskmaster.models import DrainedWorker, GateRun, RecordedBlocker
from tests.support.factories import blocker
from tests.support.lab import ROOT
from tests.support.prometheus import tool

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
REPORT = "project.tasks.generate_report"
TOKEN = "scrape-token-4c1d"


def run(verdict: str, seconds: float, finished_at: datetime, **fields: Any) -> GateRun:
    """A finished gate run that took ``seconds``."""
    created = GateRun.objects.create(timeout=600, interval=20, is_open=False, **fields)
    # started_at is auto_now_add: set it after the insert.
    GateRun.objects.filter(pk=created.pk).update(
        started_at=finished_at - timedelta(seconds=seconds),
        finished_at=finished_at,
        verdict=verdict,
    )
    created.refresh_from_db()
    return created


def exposition() -> str:
    return generate_latest(registry()).decode()


def scrape() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of the exposition: sample name -> {sorted labels: value}."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(exposition()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def by(samples: dict[tuple[tuple[str, str], ...], float], label: str) -> dict[str, float]:
    return {dict(labels)[label]: value for labels, value in samples.items()}


def bucket(scraped: dict[str, Any], verdict: str) -> dict[str, float]:
    rows = scraped["taskmaster_gate_duration_seconds_bucket"]
    return {dict(k)["le"]: v for k, v in rows.items() if dict(k)["verdict"] == verdict}


def test_with_no_run_every_verdict_counts_zero_and_nothing_else_is_said() -> None:
    scraped = scrape()

    zero = dict.fromkeys(Verdict.values, 0.0)
    assert by(scraped["taskmaster_gate_runs_total"], "verdict") == zero
    assert by(scraped["taskmaster_gate_duration_seconds_count"], "verdict") == zero
    assert by(scraped["taskmaster_gate_duration_seconds_sum"], "verdict") == zero
    assert "taskmaster_last_verdict_timestamp_seconds" not in scraped
    assert "taskmaster_gate_blockers" not in scraped
    assert "taskmaster_drain_opened_timestamp_seconds" not in scraped
    assert "taskmaster_drain_held_until_timestamp_seconds" not in scraped
    assert scraped["taskmaster_gate_blocked_in_a_row"] == {(): 0.0}
    assert scraped["taskmaster_drain_open"] == {(): 0.0}
    assert scraped["taskmaster_workers_drained"] == {(): 0.0}


def test_runs_per_verdict_their_durations_and_the_latest_of_each() -> None:
    run("clear", 0.5, T0)
    run("clear", 5, T0 + timedelta(hours=1))  # on a bound: le is "at most"
    run("clear", 40, T0 + timedelta(hours=2))
    run("blocked", 605, T0 + timedelta(hours=3))
    run("error", 4000, T0 + timedelta(hours=4))
    GateRun.objects.create(timeout=600, interval=20)  # open: no verdict yet, not counted

    scraped = scrape()

    assert by(scraped["taskmaster_gate_runs_total"], "verdict") == {
        "clear": 3.0,
        "blocked": 1.0,
        "interrupted": 0.0,
        "error": 1.0,
    }
    assert bucket(scraped, "clear") == {
        "1.0": 1.0,
        "5.0": 2.0,
        "15.0": 2.0,
        "30.0": 2.0,
        "60.0": 3.0,
        "120.0": 3.0,
        "300.0": 3.0,
        "600.0": 3.0,
        "900.0": 3.0,
        "1800.0": 3.0,
        "+Inf": 3.0,
    }
    assert bucket(scraped, "blocked") == {
        **{f"{float(b)}": 0.0 for b in BUCKETS if b < 900},
        "900.0": 1.0,
        "1800.0": 1.0,
        "+Inf": 1.0,
    }
    assert bucket(scraped, "error") == {**{f"{float(b)}": 0.0 for b in BUCKETS}, "+Inf": 1.0}
    assert set(bucket(scraped, "interrupted").values()) == {0.0}
    sums = by(scraped["taskmaster_gate_duration_seconds_sum"], "verdict")
    assert sums == {"clear": 45.5, "blocked": 605.0, "interrupted": 0.0, "error": 4000.0}
    # The latest of each verdict; none for a verdict never reached.
    assert by(scraped["taskmaster_last_verdict_timestamp_seconds"], "verdict") == {
        "clear": (T0 + timedelta(hours=2)).timestamp(),
        "blocked": (T0 + timedelta(hours=3)).timestamp(),
        "error": (T0 + timedelta(hours=4)).timestamp(),
    }


def test_blockers_are_those_at_the_verdict_of_the_latest_finished_run_per_task() -> None:
    earlier = run("blocked", 600, T0)
    blocker(earlier, "project.tasks.old_export", "t-0")
    latest = run("blocked", 600, T0 + timedelta(hours=1))
    blocker(latest, REPORT, "t-1")
    blocker(latest, REPORT, "t-2", worker="w2@host")
    blocker(latest, "project.tasks.send_receipt", "t-3", at_verdict=False)  # it ended
    # A worker that stopped answering is a blocker with no task name: it is labelled by its
    # state, in parentheses, which no task name has.
    RecordedBlocker.objects.create(
        run=latest,
        task_id="w3@host",
        name="",
        worker="w3@host",
        state="unresponsive",
        first_seen=T0,
        last_seen=T0,
        at_verdict=True,
    )
    still_running = GateRun.objects.create(timeout=600, interval=20)  # not finished: not it
    blocker(still_running, "project.tasks.other", "t-4")

    assert by(scrape()["taskmaster_gate_blockers"], "task") == {
        REPORT: 2.0,
        "(worker unresponsive)": 1.0,
    }

    run("clear", 3, T0 + timedelta(hours=2))

    assert "taskmaster_gate_blockers" not in scrape()  # no sample after a clear


def test_blocked_in_a_row_counts_back_to_the_latest_run_that_was_not_blocked() -> None:
    # Finished in this order, created in another: "latest" is by finished_at.
    run("blocked", 600, T0 + timedelta(hours=3))
    run("clear", 3, T0)
    run("blocked", 600, T0 + timedelta(hours=1))
    run("blocked", 600, T0 + timedelta(hours=2))

    assert scrape()["taskmaster_gate_blocked_in_a_row"] == {(): 3.0}

    run("interrupted", 10, T0 + timedelta(hours=4))

    assert scrape()["taskmaster_gate_blocked_in_a_row"] == {(): 0.0}


def test_an_open_drain_says_since_when_and_how_many_workers_it_holds() -> None:
    older = GateRun.objects.create(
        timeout=600, interval=20, snapshot={"w1@host": [], "w2@host": []}
    )
    DrainedWorker.objects.create(run=older, hostname="w1@host")
    DrainedWorker.objects.create(run=older, hostname="w2@host")
    # A second drain, just opened: its worker claimed, its snapshot not written yet.
    newer = GateRun.objects.create(timeout=600, interval=20)
    DrainedWorker.objects.create(run=newer, hostname="w3@host")
    GateRun.objects.filter(pk=older.pk).update(started_at=T0)

    scraped = scrape()

    assert scraped["taskmaster_drain_open"] == {(): 1.0}
    assert scraped["taskmaster_workers_drained"] == {(): 3.0}
    assert scraped["taskmaster_drain_opened_timestamp_seconds"] == {(): T0.timestamp()}
    assert "taskmaster_drain_held_until_timestamp_seconds" not in scraped  # open, not held


def test_a_clear_held_by_the_lease_is_a_drain_until_its_hold_runs_out() -> None:
    now = timezone.now()
    until = now + timedelta(minutes=29)
    held = run(
        "clear",
        3,
        now - timedelta(minutes=1),
        lease_until=until,
        snapshot={"w1@host": [{"name": "celery"}]},
    )

    scraped = scrape()
    assert scraped["taskmaster_drain_open"] == {(): 1.0}
    assert scraped["taskmaster_workers_drained"] == {(): 1.0}
    assert scraped["taskmaster_drain_opened_timestamp_seconds"] == {(): held.started_at.timestamp()}
    # Its end, so that a pushed hold that is over is not taken for a drain left open.
    assert scraped["taskmaster_drain_held_until_timestamp_seconds"] == {(): until.timestamp()}

    GateRun.objects.filter(pk=held.pk).update(lease_until=now - timedelta(seconds=1))

    scraped = scrape()
    assert scraped["taskmaster_drain_open"] == {(): 0.0}
    assert scraped["taskmaster_workers_drained"] == {(): 0.0}
    assert "taskmaster_drain_opened_timestamp_seconds" not in scraped
    assert "taskmaster_drain_held_until_timestamp_seconds" not in scraped


@pytest.mark.django_db(transaction=True)
def test_a_scrape_of_5000_runs_reads_a_few_rows_in_a_few_queries() -> None:
    """The database counts and sums: no query returns more rows than there are verdicts or
    blocked tasks, whatever the history holds."""
    GateRun.objects.bulk_create(
        GateRun(
            timeout=600,
            interval=20,
            is_open=False,
            verdict=("clear", "blocked")[n % 2],
            finished_at=T0 + timedelta(seconds=n),
        )
        for n in range(5000)
    )
    GateRun.objects.update(started_at=F("finished_at") - timedelta(seconds=30))
    rows: list[int] = []

    def count_rows(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        rows.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(count_rows):
        scraped = scrape()

    assert by(scraped["taskmaster_gate_runs_total"], "verdict")["blocked"] == 2500.0
    assert bucket(scraped, "clear")["60.0"] == 2500.0
    assert len(rows) <= 8
    assert max(rows) <= len(Verdict.values)


def test_promtool_accepts_the_exposition() -> None:
    promtool = tool("promtool")
    latest = run("blocked", 605, T0)
    blocker(latest, REPORT, "t-1")
    GateRun.objects.create(timeout=600, interval=20, snapshot={"w1@host": []})

    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition(), capture_output=True, text=True
    )

    # promtool prints lint problems and exits 1 (3 for a format error); nothing means clean.
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")


def test_the_documented_alert_rules_are_valid_and_fire_when_they_should(tmp_path: Path) -> None:
    """The rules of docs/observability.md, as a reader copies them: promtool checks them, and
    its unit tests (tests/support/alert_rules.test.yml) fire each on its case, and not on
    the quiet one (a held clear still pushed after its hold ended, a project with no gate)."""
    promtool = tool("promtool")
    page = (ROOT / "docs" / "observability.md").read_text()
    rules = page.split("### Alert rules", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "taskmaster.rules.yml").write_text(rules)
    tests = tmp_path / "taskmaster.test.yml"
    tests.write_text((ROOT / "tests" / "support" / "alert_rules.test.yml").read_text())

    checked = subprocess.run(
        [promtool, "check", "rules", "taskmaster.rules.yml"], cwd=tmp_path, capture_output=True
    )
    tested = subprocess.run(
        [promtool, "test", "rules", tests.name], cwd=tmp_path, capture_output=True, text=True
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert b"SUCCESS: 3 rules found" in checked.stdout
    assert tested.returncode == 0, tested.stdout + tested.stderr


# -- the view -------------------------------------------------------------------------------


def token(value: str | None = TOKEN) -> override_settings:
    from django.conf import settings

    return override_settings(TASKMASTER={**settings.TASKMASTER, "METRICS": {"TOKEN": value}})


def test_the_view_answers_a_bearer_of_the_token_with_the_exposition(client: Any) -> None:
    run("clear", 3, T0)

    with token():
        response = client.get("/metrics/taskmaster", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    assert 'taskmaster_gate_runs_total{verdict="clear"} 1.0' in response.content.decode()


@pytest.mark.parametrize(
    ("configured", "header"),
    [
        (TOKEN, None),
        (TOKEN, "Bearer wrong-token"),
        (TOKEN, f"Basic {TOKEN}"),
        (None, "Bearer "),  # no token configured: the bearer path is off
        (None, "Bearer None"),
    ],
)
def test_the_view_refuses_anyone_else_and_says_nothing(
    client: Any, configured: str | None, header: str | None
) -> None:
    with token(configured):
        response = client.get(
            "/metrics/taskmaster", **({"HTTP_AUTHORIZATION": header} if header else {})
        )

    assert (response.status_code, response.content) == (403, b"")


def test_the_view_answers_a_user_who_may_view_gate_runs_only(
    client: Any, django_user_model: Any
) -> None:
    user = django_user_model.objects.create_user("ops", password="pw")
    client.force_login(user)
    assert client.get("/metrics/taskmaster").status_code == 403

    user.user_permissions.add(Permission.objects.get(codename="view_gaterun"))
    response = client.get("/metrics/taskmaster")

    assert response.status_code == 200
    assert "taskmaster_drain_open 0.0" in response.content.decode()


def test_the_view_is_get_only(client: Any) -> None:
    with token():
        response = client.post("/metrics/taskmaster", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 405


def test_a_database_that_fails_is_a_503_in_one_sentence(client: Any) -> None:
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("ALTER TABLE taskmaster_gaterun RENAME TO taskmaster_gaterun_gone")

    with token():
        response = client.get("/metrics/taskmaster", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 503
    assert response.content.decode() == "The gate runs cannot be read now: the database failed.\n"


def test_without_prometheus_client_the_view_says_what_to_install(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_prometheus_client(monkeypatch)

    with token():
        response = client.get("/metrics/taskmaster", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 503
    assert 'pip install "django-taskmaster[metrics]"' in response.content.decode()


# -- the receivers' failures ----------------------------------------------------------------


def without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in an installation without the extra: importing prometheus_client fails."""
    for name in list(sys.modules):
        if name.startswith("prometheus_client") or name == "taskmaster.metrics.collector":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # type: ignore[arg-type]


def metrics(**config: Any) -> override_settings:
    from django.conf import settings

    return override_settings(TASKMASTER={**settings.TASKMASTER, "METRICS": config})


def closed_port() -> int:
    from tests.support.prometheus import free_port

    return free_port()  # free, so nothing listens: the connection is refused


def test_a_pushgateway_that_refuses_is_a_note_and_a_warning_without_its_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = closed_port()
    notes: list[str] = []

    with (
        caplog.at_level(logging.WARNING, "taskmaster"),
        metrics(PUSHGATEWAY=f"http://deploy:hunter2@127.0.0.1:{port}"),
    ):
        export.export(notes.append)

    sentence = f"metrics: could not push to http://deploy:**@127.0.0.1:{port}: Connection refused"
    assert notes == [sentence]
    # Expected (the network): no traceback.
    assert [(r.levelname, r.getMessage(), r.exc_info or None) for r in caplog.records] == [
        ("WARNING", sentence, None)
    ]


def test_a_pushgateway_that_never_answers_costs_its_timeout_and_is_a_note() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does), answers nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        notes: list[str] = []
        started = time.monotonic()

        with metrics(PUSHGATEWAY=f"127.0.0.1:{port}"):  # no scheme: http, as prometheus_client
            export.export(notes.append)

    assert notes == [f"metrics: could not push to 127.0.0.1:{port}: timed out"]
    assert time.monotonic() - started < export.PUSH_TIMEOUT + 5  # not the 30 s of its default


def test_a_textfile_that_cannot_be_written_is_a_note(tmp_path: Path) -> None:
    notes: list[str] = []
    path = tmp_path / "missing-folder" / "taskmaster.prom"

    with metrics(TEXTFILE=str(path)):
        export.export(notes.append)

    assert notes == [f"metrics: could not write {path}: No such file or directory"]
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_database_that_fails_is_a_note_of_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with connection.cursor() as cursor:  # undone with the test's transaction
        cursor.execute("ALTER TABLE taskmaster_gaterun RENAME TO taskmaster_gaterun_gone")
    notes: list[str] = []

    with (
        caplog.at_level(logging.WARNING, "taskmaster"),
        metrics(TEXTFILE=str(tmp_path / "taskmaster.prom")),
    ):
        export.export(notes.append)

    assert notes == [
        'metrics: could not read the gate runs: relation "taskmaster_gaterun" does not exist'
    ]
    assert [r.exc_info or None for r in caplog.records] == [None]  # expected: no traceback
    assert list(tmp_path.iterdir()) == []  # nothing written rather than numbers made up


def test_the_textfile_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "taskmaster.prom"
    path.write_text("# an earlier reading\n")
    run("blocked", 605, T0)

    with metrics(TEXTFILE=str(path)):
        export.export(pytest.fail)  # no note: nothing failed

    assert [p.name for p in tmp_path.iterdir()] == ["taskmaster.prom"]  # the temporary is gone
    assert 'taskmaster_gate_runs_total{verdict="blocked"} 1.0' in path.read_text()


def test_without_prometheus_client_the_receivers_say_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    without_prometheus_client(monkeypatch)
    notes: list[str] = []

    with metrics(TEXTFILE=str(tmp_path / "taskmaster.prom")):
        export.export(notes.append)

    assert len(notes) == 1
    assert 'pip install "django-taskmaster[metrics]"' in notes[0]
    assert list(tmp_path.iterdir()) == []


def test_without_metrics_settings_nothing_imports_prometheus_client(tmp_path: Path) -> None:
    """An installation without the extra runs gates, and its receivers, without it."""
    script = (
        "import sys, django; django.setup()\n"
        "from taskmaster.models import GateRun\n"
        "from taskmaster.signals import gate_finished, gate_started\n"
        "gate_started.send(GateRun, run=GateRun(), workers=['w1@host'], note=print)\n"
        "gate_finished.send(GateRun, run=GateRun(), outcome=None, note=print)\n"
        "assert 'prometheus_client' not in sys.modules, 'imported'\n"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "PATH": "/usr/bin:/bin",
        "TASKMASTER_VAR_DIR": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )

    assert (done.returncode, done.stdout) == (0, ""), done.stderr
