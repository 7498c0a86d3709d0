"""System checks: in process with ``override_settings``, and ``manage.py check`` as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.test import override_settings

from taskmaster.checks import check_settings, check_tasks

ROOT = Path(__file__).resolve().parent.parent
REPORT = "project.tasks.generate_report"
DEMO = dict(settings.TASKMASTER)  # the demo project's: generate_report is not accepted


def taskmaster(**overrides: Any) -> override_settings:
    return override_settings(TASKMASTER={**DEMO, **overrides})


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages]


# -- blocking tasks (W001, W002, E010) ----------------------------------------------------


def test_a_blocking_task_is_a_warning_that_names_it_and_says_how_to_fix_it() -> None:
    with taskmaster():
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.W001"]
    (warning,) = messages
    assert isinstance(warning, Warning) and not isinstance(warning, Error)
    assert warning.obj == REPORT
    assert "acks_late=True" in warning.hint and "ACCEPTED_BLOCKING_TASKS" in warning.hint


def test_an_accepted_blocking_task_is_not_reported() -> None:
    with taskmaster(ACCEPTED_BLOCKING_TASKS=[REPORT]):
        assert check_tasks() == []


def test_the_short_task_limit_decides_what_is_blocking() -> None:
    # send_receipt has time_limit=30: short under the default 60 s, blocking under 10 s.
    with taskmaster(SHORT_TASK_LIMIT=10):
        messages = check_tasks()

    assert sorted(m.obj for m in messages) == [REPORT, "project.tasks.send_receipt"]
    assert "time limit of 10 s or less" in messages[0].msg


def test_blocking_tasks_are_errors_when_asked() -> None:
    with taskmaster(BLOCKING_TASKS_ARE_ERRORS=True):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E010"]
    assert isinstance(messages[0], Error) and messages[0].obj == REPORT


def test_stale_accepted_entries_are_reported() -> None:
    accepted = [REPORT, "project.tasks.resize_images", "project.tasks.deleted_long_ago"]
    with taskmaster(ACCEPTED_BLOCKING_TASKS=accepted):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.W002", "taskmaster.W002"]
    assert messages[0].msg == (
        "'project.tasks.deleted_long_ago' is in TASKMASTER['ACCEPTED_BLOCKING_TASKS'] "
        "but is not registered."
    )
    assert "'project.tasks.resize_images'" in messages[1].msg
    assert messages[1].msg.endswith("but is interruptible.")


# -- settings (E002-E005, E007) -----------------------------------------------------------


def test_the_demo_settings_are_valid() -> None:
    with taskmaster():
        assert check_settings() == []


def test_an_unknown_key_is_an_error_that_lists_the_known_ones() -> None:
    with taskmaster(TIMOUT=30):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E002"]
    assert "'TIMOUT'" in messages[0].msg and "TIMEOUT" in messages[0].hint


def test_taskmaster_must_be_a_dict() -> None:
    with override_settings(TASKMASTER=[("TIMEOUT", 30)]):
        assert ids(check_settings()) == ["taskmaster.E008"]
        assert check_tasks() == []  # the settings error is what to fix first


@pytest.mark.parametrize("value", [0, -5, "600", True, None, float("nan"), float("inf")])
def test_a_bad_number_of_seconds_is_an_error(value: Any) -> None:
    with taskmaster(TIMEOUT=value):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E003"]
    assert "TASKMASTER['TIMEOUT'] must be a number of seconds above 0" in messages[0].msg
    with taskmaster(TIMEOUT=value):
        assert check_tasks() == []


def test_every_seconds_setting_is_checked() -> None:
    with taskmaster(INTERVAL=0, SHORT_TASK_LIMIT="60", REPLY_TIMEOUT=-1.0):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E003"] * 3
    assert ["INTERVAL" in messages[0].msg, "SHORT" in messages[1].msg] == [True, True]


def test_an_interval_longer_than_the_timeout_is_an_error_even_beside_another_error() -> None:
    with taskmaster(TIMEOUT=10, INTERVAL=20, SHOW_TASK_ARGS="no"):
        assert ids(check_settings()) == ["taskmaster.E004", "taskmaster.E007"]


@pytest.mark.parametrize("value", [REPORT, None, 5, [REPORT, 5]])
def test_accepted_blocking_tasks_must_be_a_list_of_names(value: Any) -> None:
    with taskmaster(ACCEPTED_BLOCKING_TASKS=value):
        assert ids(check_settings()) == ["taskmaster.E005"]


@pytest.mark.parametrize("key", ["SHOW_TASK_ARGS", "BLOCKING_TASKS_ARE_ERRORS"])
def test_a_switch_must_be_a_bool(key: str) -> None:
    # From an environment variable, "False" would silently mean True.
    with taskmaster(**{key: "False"}):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E007"]
    assert messages[0].msg == f"TASKMASTER[{key!r}] must be True or False, not 'False'."


# -- the Celery app (E001, E006) ---------------------------------------------------------


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for throwaway modules, forgotten again after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("tm_"):
            del sys.modules[name]


def test_an_unimportable_app_is_an_error() -> None:
    with taskmaster(CELERY_APP="nowhere.celery.app"):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E001"]
    assert messages[0].msg.startswith("Cannot import the Celery app 'nowhere.celery.app': ")
    assert "TASKMASTER['CELERY_APP']" in messages[0].hint


def test_an_app_module_that_raises_is_an_error_not_a_crash(modules: Path) -> None:
    (modules / "tm_exploding.py").write_text("raise RuntimeError('BROKER_URL is not set')\n")

    with taskmaster(CELERY_APP="tm_exploding.app"):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E001"]
    assert "RuntimeError('BROKER_URL is not set')" in messages[0].msg


def test_something_that_is_not_a_celery_app_is_an_error() -> None:
    with taskmaster(CELERY_APP="project.settings.DEBUG"):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E001"]
    assert "a bool, not a Celery app" in messages[0].msg


def test_a_task_module_that_fails_to_import_is_an_error(modules: Path) -> None:
    (modules / "tm_broken_app.py").write_text(
        "from celery import Celery\n"
        "app = Celery('tm_broken', set_as_current=False)\n"
        "app.conf.imports = ['tm_broken_tasks']\n"
    )
    (modules / "tm_broken_tasks.py").write_text("raise ValueError('half-written task module')\n")

    with taskmaster(CELERY_APP="tm_broken_app.app"):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E006"]
    assert "half-written task module" in messages[0].msg


# -- `manage.py check --fail-level WARNING`, as CI runs it --------------------------------


def manage_check(
    tmp_path: Path, settings_body: str | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the demo project's ``check`` in a fresh process.

    ``settings_body`` (if any) becomes a settings module on top of ``project.settings``:
    Celery reads ``CELERY_*`` once, when the app is configured, so only a new process sees
    a changed ``CELERY_TASK_ANNOTATIONS``.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PYTEST_"))
    }
    env.pop("DATABASE_URL", None)  # check needs no database: the demo's embedded SQLite
    env["TASKMASTER_VAR_DIR"] = str(tmp_path / "var")
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    if settings_body is not None:
        (tmp_path / "tm_check_settings.py").write_text(
            "from project.settings import *  # noqa: F403\n" + settings_body
        )
        env["PYTHONPATH"] = str(tmp_path)
        env["DJANGO_SETTINGS_MODULE"] = "tm_check_settings"
    return subprocess.run(
        [sys.executable, "manage.py", "check", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_fails_ci_on_the_demo_projects_blocking_task(tmp_path: Path) -> None:
    result = manage_check(tmp_path, None, "--fail-level", "WARNING")

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{REPORT}: (taskmaster.W001) Task '{REPORT}' is blocking" in result.stderr
    assert result.stderr.count("taskmaster.") == 1  # nothing else: resize and receipt are fine


def test_check_passes_once_the_task_is_accepted(tmp_path: Path) -> None:
    body = f"TASKMASTER = {{**TASKMASTER, 'ACCEPTED_BLOCKING_TASKS': [{REPORT!r}]}}\n"

    result = manage_check(tmp_path, body, "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_passes_once_the_task_is_acks_late_through_task_annotations(tmp_path: Path) -> None:
    # Celery applies task_annotations when the app is finalized; the registry reads the
    # bound task's acks_late, so it sees the annotation like a worker would.
    body = f"CELERY_TASK_ANNOTATIONS = {{{REPORT!r}: {{'acks_late': True}}}}\n"

    result = manage_check(tmp_path, body, "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_fails_even_without_fail_level_when_blocking_tasks_are_errors(
    tmp_path: Path,
) -> None:
    body = "TASKMASTER = {**TASKMASTER, 'BLOCKING_TASKS_ARE_ERRORS': True}\n"

    result = manage_check(tmp_path, body)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{REPORT}: (taskmaster.E010)" in result.stderr


def test_check_reports_a_settings_mistake_in_a_real_process(tmp_path: Path) -> None:
    body = "TASKMASTER = {**TASKMASTER, 'TIMEOUT': '600', 'CELERY_APP': 'nowhere.app'}\n"

    result = manage_check(tmp_path, body)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "(taskmaster.E003) TASKMASTER['TIMEOUT'] must be a number" in result.stderr
    assert "taskmaster.E001" not in result.stderr  # settings first, then the app
