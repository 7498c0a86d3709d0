"""Taskmaster in a project laid out like a widely used Django template (tests/support/
real_layout): split settings, the Celery app in ``config/celery_app.py`` imported by
``config/__init__.py``, the root logger at INFO on the console, a global task time limit, and
no ``TASKMASTER`` setting at all. The gate, ``check``, the admin pages and the documented
Celery command lines run on it as its users run them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.lab import Lab, Result, Worker

LAYOUT = Path(__file__).resolve().parents[1] / "support" / "real_layout"
SETTINGS = "config.settings.local"
BOTH = pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)


def manage(lab: Lab, *args: str) -> Result:
    return lab.manage(*args, settings=SETTINGS, cwd=LAYOUT)


def worker(lab: Lab) -> Worker:
    return lab.start_worker("w1", app="config.celery_app", settings=SETTINGS, cwd=LAYOUT)


def celery(lab: Lab, *args: str) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "config.celery_app", *args],
        cwd=LAYOUT,
        env=lab.env_for(settings=SETTINGS),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(proc.stdout, proc.stderr, proc.returncode)


def test_check_finds_the_app_and_the_global_time_limit(lab: Lab) -> None:
    result = manage(lab, "check", "--fail-level", "WARNING")

    assert result.code == 0, result.text  # no E001 (the app is found), no W001 (bounded)
    assert "System check identified no issues" in result.text


@BOTH
def test_the_gate_says_each_step_once_on_a_console_that_logs_info(lab: Lab) -> None:
    w1 = worker(lab)

    result = manage(lab, "prepare_deploy", "--interval", "1", "--timeout", "10")

    assert result.code == 0, result.text
    assert result.text.count(f"draining {w1.name}") == 1, result.text  # not once more as a log
    assert result.text.count("verdict: clear") == 1
    assert "Connected to" not in result.text  # kombu's, for the gate's own event listener
    # The taskmaster logger's INFO records are the run's own: opened, verdict, held.
    logged = [line for line in result.text.splitlines() if " gate run #" in line]
    logged = [line for line in logged if line.startswith("INFO ")]
    assert len(logged) == 3, logged
    for said in ("opened on", ": clear (exit 0), 1 worker(s), 0 blocker(s)", ": clear; drain held"):
        assert sum(said in line for line in logged) == 1, (said, logged)


def test_the_registry_reads_the_global_time_limit_on_every_celery(lab: Lab) -> None:
    worker(lab)
    sent = lab.app.send_task("reports.tasks.build", args=(20,), queue=lab.queue)
    lab.wait_active(f"w1-{lab.tag}@lab")

    result = manage(lab, "prepare_deploy", "--dry-run", "--json")

    assert result.code == 1, result.text  # a short task runs: the gate would wait for it
    report = json.loads(result.out)
    (task,) = report["tasks"]
    assert (task["id"], task["classification"]) == (str(sent.id), "short")
    assert "reports.tasks.build: 1 active" in result.err
    assert "(short): blocks a deploy" in result.err


@BOTH
def test_the_documented_celery_command_lines_run(lab: Lab) -> None:
    w1 = worker(lab)

    status = celery(lab, "inspect", "taskmaster_lease_status")
    release = celery(lab, "control", "taskmaster_release")
    words = celery(lab, "taskmaster")

    for result in (status, release, words):
        assert result.code == 0, result.text
        assert "not recognized" not in result.text
    assert f"{w1.name}: no lease: consuming as configured" in words.out


def test_the_admin_pages_show_the_tasks_with_their_global_limit(lab: Lab) -> None:
    worker(lab)
    assert manage(lab, "sync_task_registry").code == 0
    script = (
        "from django.contrib.auth.models import User\n"
        "from django.test import Client\n"
        "user = User.objects.create_superuser('ops', 'ops@example.com', 'pw')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "for url in ('/admin/taskmaster/noninterruptibletask/?classification=all',\n"
        "            '/admin/taskmaster/gaterun/', '/admin/taskmaster/deployreadiness/'):\n"
        "    response = client.get(url)\n"
        "    print(url, response.status_code)\n"
        "page = client.get('/admin/taskmaster/noninterruptibletask/?classification=all')\n"
        "print('limit 30 s' if '30 s' in page.content.decode() else 'no limit shown')\n"
    )

    result = manage(lab, "shell", "-c", script)

    assert result.code == 0, result.text
    assert "/admin/taskmaster/noninterruptibletask/?classification=all 200" in result.out
    assert "/admin/taskmaster/gaterun/ 200" in result.out
    assert "/admin/taskmaster/deployreadiness/ 200" in result.out
    assert "limit 30 s" in result.out
