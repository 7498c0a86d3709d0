"""System checks: in process with ``override_settings``, and ``manage.py check`` as CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.test import override_settings

import project.tasks  # noqa: F401  (its shared tasks join every Celery app made after)
from taskmaster.checks.app import check_tasks
from taskmaster.checks.broker import check_broker_settings
from taskmaster.checks.settings import check_settings
from taskmaster.conf import find_celery_app

ROOT = Path(__file__).resolve().parents[2]
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
    assert warning.msg == (
        f"Task {REPORT!r} is blocking: it is acknowledged when it starts and has no hard time "
        "limit of 60 s or less, so a deploy that stops its worker loses it."
    )
    assert warning.hint == (
        "Fix it one of three ways: make it idempotent and set acks_late=True (the broker "
        "delivers it again if its worker stops); or give it a hard time_limit of at most 60 s "
        "(the gate waits for it to end); or, if it must stay as it is, accept it in "
        "TASKMASTER['ACCEPTED_BLOCKING_TASKS']."
    )


@pytest.mark.django_db
def test_with_the_database_w001_says_which_tasks_blocked_deploys_and_names_them_first(
    modules: Path,
) -> None:
    from datetime import datetime

    from taskmaster.models import GateRun, RecordedBlocker

    (modules / "tm_history_app.py").write_text(
        "from celery import Celery\n"
        "app = Celery('tm_history', set_as_current=False)\n"
        "@app.task(name='app.add', shared=False)\n"
        "def add(x, y): return x + y\n"
        "@app.task(name='app.report', shared=False)\n"
        "def report(): pass\n"
        "@app.task(name='app.zip', shared=False)\n"
        "def zip_(): pass\n"
    )
    started = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    for day, verdict in ((1, "blocked"), (2, "blocked"), (3, "clear")):
        run = GateRun.objects.create(verdict=verdict, is_open=False, timeout=600, interval=20)
        GateRun.objects.filter(pk=run.pk).update(started_at=started.replace(day=day + 17))
        RecordedBlocker.objects.create(
            run=run,
            task_id=f"z-{day}",
            name="app.zip",
            worker="w1@a",
            state="active",
            first_seen=started,
            last_seen=started,
            at_verdict=True,
        )

    with taskmaster(CELERY_APP="tm_history_app.app"):
        without = check_tasks()
        messages = check_tasks(databases=["default"])

    # (The demo project's shared task generate_report joins every app: it comes last.)
    assert [m.obj for m in without] == ["app.add", "app.report", "app.zip", REPORT]
    assert [m.obj for m in messages] == ["app.zip", "app.add", "app.report", REPORT]
    assert messages[0].msg.startswith("Task 'app.zip' blocked 2 deploys, the last on 2026-11-19: ")
    assert messages[1].msg.startswith(
        "Task 'app.add' could block a deploy (it has not blocked one yet): it is acknowledged"
    )
    assert {m.id for m in messages} == {"taskmaster.W001"}


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


# -- broker traps (W003, W004) -------------------------------------------------------------


def trap_app(modules: Path, name: str, config: str, *tasks: str) -> str:
    """A throwaway Celery app module with this configuration and these task decorators."""
    body = [
        "from celery import Celery",
        f"app = Celery({name!r}, set_as_current=False)",
        config,
    ]
    for n, decorator in enumerate(tasks):
        options = f"{decorator}, " if decorator else ""
        body += [f"@app.task({options}name='trap.t{n}', shared=False)", f"def t{n}(): pass"]
    (modules / f"{name}.py").write_text("\n".join(body) + "\n")
    return f"{name}.app"


def trap_ids(app: str) -> list[tuple[str, Any]]:
    with taskmaster(CELERY_APP=app):
        return [(m.id, m.obj) for m in check_broker_settings()]


REDIS = "app.conf.broker_url = 'redis://127.0.0.1:6379/3'; app.conf.worker_prefetch_multiplier = 1"


def test_an_acks_late_task_that_outlives_the_visibility_timeout_runs_twice(modules: Path) -> None:
    config = REDIS + "; app.conf.broker_transport_options = {'visibility_timeout': 600}"
    app = trap_app(
        modules,
        "tm_trap_redis",
        config,
        "acks_late=True, time_limit=900",
        "acks_late=True, time_limit=300",
        "acks_late=True",
    )

    with taskmaster(CELERY_APP=app):
        messages = check_broker_settings()

    assert [(m.id, m.obj) for m in messages] == [("taskmaster.W003", "trap.t0")]
    assert messages[0].msg == (
        "Task 'trap.t0' is acks_late with a hard time limit of 900 s, longer than the "
        "broker's visibility_timeout (600 s): redis delivers its message again to another "
        "worker while it still runs, so it runs twice."
    )
    assert "CELERY_BROKER_TRANSPORT_OPTIONS" in messages[0].hint


def test_redis_keeps_its_default_visibility_timeout_of_an_hour(modules: Path) -> None:
    app = trap_app(modules, "tm_trap_default", REDIS, "acks_late=True, time_limit=7200")

    assert trap_ids(app) == [("taskmaster.W003", "trap.t0")]


def test_rabbitmq_has_no_visibility_timeout(modules: Path) -> None:
    config = "app.conf.broker_url = 'amqp://x//'; app.conf.worker_prefetch_multiplier = 1"
    app = trap_app(modules, "tm_trap_amqp", config, "acks_late=True, time_limit=7200")

    assert trap_ids(app) == []


def test_early_ack_tasks_with_a_prefetch_multiplier_above_one_block_every_gate(
    modules: Path,
) -> None:
    app = trap_app(modules, "tm_trap_prefetch", "", "acks_late=True", "time_limit=30", "")

    with taskmaster(CELERY_APP=app):
        (message,) = check_broker_settings()

    assert (message.id, message.obj) == ("taskmaster.W004", "worker_prefetch_multiplier")
    # The demo project's shared tasks join every app: two of them are early-ack too.
    assert message.msg == (
        "worker_prefetch_multiplier is 4 and 4 task(s) are acknowledged when they start "
        "(project.tasks.generate_report, project.tasks.send_receipt, trap.t1 and 1 more): "
        "workers prefetch their messages (up to 4 per process), and each prefetched one "
        "blocks a gate until a worker has run it, however short the task."
    )
    assert message.hint.startswith("Set CELERY_WORKER_PREFETCH_MULTIPLIER = 1")


@pytest.mark.parametrize(
    "config",
    [
        "app.conf.worker_prefetch_multiplier = 1",
        "app.conf.broker_url = 'redis://x/0'; app.conf.worker_disable_prefetch = True",
    ],
)
def test_no_prefetch_trap_with_one_message_per_process_or_none(modules: Path, config: str) -> None:
    name = f"tm_trap_ok_{abs(hash(config))}"
    assert trap_ids(trap_app(modules, name, config, "")) == []


def test_no_prefetch_trap_when_every_task_is_acks_late(modules: Path) -> None:
    # task_acks_late: the demo project's shared tasks join every app, and this covers them.
    config = "app.conf.worker_prefetch_multiplier = 0; app.conf.task_acks_late = True"
    app = trap_app(modules, "tm_trap_late", config, "")

    assert trap_ids(app) == []


def test_an_unlimited_prefetch_is_said_so(modules: Path) -> None:
    app = trap_app(modules, "tm_trap_unlimited", "app.conf.worker_prefetch_multiplier = 0", "")

    with taskmaster(CELERY_APP=app):
        (message,) = check_broker_settings()

    assert "(without limit)" in message.msg


def test_workers_with_remote_control_off_cannot_be_drained(modules: Path) -> None:
    config = (
        "app.conf.worker_prefetch_multiplier = 1; app.conf.worker_enable_remote_control = False"
    )
    app = trap_app(modules, "tm_trap_deaf", config, "")

    with taskmaster(CELERY_APP=app):
        (message,) = check_broker_settings()

    assert (message.id, message.obj) == ("taskmaster.W005", "worker_enable_remote_control")
    assert "no gate can drain these workers" in message.msg


# -- settings (E002-E005, E007, E009) ------------------------------------------------------


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


@pytest.mark.parametrize("value", ["amqp://guest:secret@rabbit//", "rabbit:15672", 15672])
def test_the_management_url_must_be_an_http_url(value: Any) -> None:
    with taskmaster(RABBITMQ_MANAGEMENT_URL=value):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E009"]
    assert "secret" not in messages[0].msg  # a password in a wrong URL is not repeated


def test_the_management_url_may_be_none_or_http() -> None:
    for value in (None, "http://u:p@rabbit:15672", "https://rabbit/api-prefix"):
        with taskmaster(RABBITMQ_MANAGEMENT_URL=value):
            assert check_settings() == []


# -- metrics, notifications, the site's address (E011 to E014) ---------------------------


@pytest.mark.parametrize(
    "value",
    [
        "http://pushgateway:9091",  # a dict, not the URL alone
        {"PUSHGATEWAY": "pushgateway:9091"},
        {"TEXTFILE": "/var/lib/node_exporter/taskmaster.txt"},  # node_exporter reads *.prom
        {"PUSHGATEWAY": "http://p:9091", "JOBS": "x"},
    ],
)
def test_metrics_must_say_where_they_go(value: Any) -> None:
    with taskmaster(METRICS=value):
        assert ids(check_settings()) == ["taskmaster.E011"]


def test_metrics_need_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as where it is not installed
    with taskmaster(METRICS={"PUSHGATEWAY": "http://pushgateway:9091"}):
        messages = check_settings()

    assert ids(messages) == ["taskmaster.E012"]
    assert messages[0].hint == 'pip install "django-taskmaster[metrics]"'


def test_good_metrics_notifications_and_site_url_are_accepted() -> None:
    with taskmaster(
        METRICS={"PUSHGATEWAY": "https://u:p@push:9091", "TEXTFILE": "/t/tm.prom", "TOKEN": "x"},
        NOTIFICATIONS=[
            {"URL": "https://hooks.slack.com/services/T/B/X", "FORMAT": "slack", "ON": ["blocked"]},
            {"URL": "http://ops/hook", "ON": ["clear", "restored"], "SECRET": "k"},
        ],
        SITE_URL="https://ops.example.com",
    ):
        assert check_settings() == []


@pytest.mark.parametrize(
    "value",
    [
        {"URL": "https://ops/hook", "ON": ["blocked"]},  # one, not a list of them
        [{"URL": "ops/hook", "ON": ["blocked"]}],
        [{"URL": "https://ops/hook", "ON": "blocked"}],
        [{"URL": "https://ops/hook", "ON": ["blocked", "failed"]}],
        [{"URL": "https://ops/hook", "ON": ["blocked"], "FORMAT": "teams"}],
        [{"URL": "https://ops/hook", "ON": ["blocked"], "SECRET": 42}],
        [{"URL": "https://ops/hook", "ON": ["blocked"], "TIMEOUT": 3}],
    ],
)
def test_each_notification_needs_a_url_a_format_and_its_verdicts(value: Any) -> None:
    with taskmaster(NOTIFICATIONS=value):
        assert ids(check_settings()) == ["taskmaster.E013"]


def test_the_site_url_must_be_an_http_url() -> None:
    with taskmaster(SITE_URL="ops.example.com"):
        assert ids(check_settings()) == ["taskmaster.E014"]


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
    assert messages[0].msg == (
        "Cannot find the Celery app; tried nowhere.celery.app (No module named 'nowhere')."
    )
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


# -- finding the Celery app as Celery's Django guide lays a project out --------------------


def layout(modules: Path, package: str, init: str, app_module: str, app_name: str = "app") -> None:
    """A project package whose __init__ imports its Celery app, and split settings."""
    (modules / package / "settings").mkdir(parents=True)
    (modules / package / "__init__.py").write_text(init)
    (modules / package / app_module).write_text(
        f"from celery import Celery\n{app_name} = Celery({package!r}, set_as_current=False)\n"
    )
    (modules / package / "settings" / "__init__.py").write_text("")
    (modules / package / "settings" / "local.py").write_text("")


def test_the_app_is_found_above_split_settings_as_celerys_django_guide_has_it(
    modules: Path,
) -> None:
    init = "from .celery_app import app as celery_app\n__all__ = ('celery_app',)\n"
    layout(modules, "tm_config", init, "celery_app.py")

    with taskmaster(CELERY_APP=None), override_settings(SETTINGS_MODULE="tm_config.settings.local"):
        app = find_celery_app()

    assert app.main == "tm_config"


def test_the_classic_layout_proj_celery_app_is_found_too(modules: Path) -> None:
    layout(modules, "tm_classic", "", "celery.py")

    with taskmaster(CELERY_APP=None), override_settings(SETTINGS_MODULE="tm_classic.settings"):
        assert find_celery_app().main == "tm_classic"


@pytest.mark.parametrize("spelling", ["tm_spelled.worker:celery", "tm_spelled.worker.celery"])
def test_the_setting_takes_celerys_own_spellings(modules: Path, spelling: str) -> None:
    (modules / "tm_spelled").mkdir()
    (modules / "tm_spelled" / "__init__.py").write_text("")
    (modules / "tm_spelled" / "worker.py").write_text(
        "from celery import Celery\ncelery = Celery('tm_spelled', set_as_current=False)\n"
    )

    with taskmaster(CELERY_APP=spelling):
        assert find_celery_app().main == "tm_spelled"
        assert "taskmaster.E001" not in ids(check_tasks())


def test_no_app_above_the_settings_says_every_place_it_looked(modules: Path) -> None:
    (modules / "tm_empty" / "settings").mkdir(parents=True)
    (modules / "tm_empty" / "__init__.py").write_text("")
    (modules / "tm_empty" / "settings" / "__init__.py").write_text("")

    with taskmaster(CELERY_APP=None), override_settings(SETTINGS_MODULE="tm_empty.settings.local"):
        messages = check_tasks()

    assert ids(messages) == ["taskmaster.E001"]
    assert messages[0].msg == (
        "Cannot find the Celery app; tried tm_empty.settings (no Celery app in it); tm_empty "
        "(no Celery app in it)."
    )
    assert "'config.celery_app'" in messages[0].hint
