"""Django's common options and the "nothing touched" exits 2, as a user runs them.

docs/usage.md documents, for ``prepare_deploy``, ``resume_consumers`` and
``sync_task_registry``, Django's common options (``-h``/``--help``, ``--version``, ``-v``,
``--settings``, ``--pythonpath``, ``--traceback``, ``--no-color``, ``--force-color``) and
exit 2 for a task module that cannot be imported, an interval longer than the timeout, an
unknown option and a ``--queue`` no worker consumes. Each command runs here as a
``manage.py`` process against real RabbitMQ, real workers and PostgreSQL; "nothing touched"
is read where it would show: the workers' queues, and the gate runs in the database.

``tests/system/test_docs.py`` compares the option *tables* with ``--help`` built in-process;
this file runs the options themselves.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import django
import pytest

from taskmaster.models import GateRun, TaskPolicy
from tests.support.lab import ROOT, Lab
from tests.system.test_docs import (
    documented_flags,
    flags,
    options_in_help,
    page,
    section,
    table_rows,
)

COMMANDS = ("prepare_deploy", "resume_consumers", "sync_task_registry")
FAST = ("--interval", "1")
# The demo project with TASKMASTER read from TEST_TASKMASTER (JSON).
CONTRACT = "tests.support.contract_settings"
NO_APP = {"TEST_TASKMASTER": json.dumps({"CELERY_APP": "nowhere.celery.app"})}
NO_APP_ERROR = (
    "cannot find the Celery app; tried nowhere.celery.app (No module named 'nowhere'). Set "
    "TASKMASTER['CELERY_APP'] to your Celery app as `celery -A` names it, e.g. "
    "'config.celery_app' or 'proj.celery:app'"
)


def words(text: str) -> str:
    """``text`` with every run of whitespace made one space: argparse wraps help lines."""
    return " ".join(text.split())


def human_lines(text: str) -> list[str]:
    """The gate's plain lines without their UTC timestamps."""
    return [re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ", "", line) for line in text.splitlines()]


def nothing_recorded() -> bool:
    return not GateRun.objects.exists()


# -- -h, --help ------------------------------------------------------------------------


def documented_options(command: str) -> set[str]:
    """Every flag docs/usage.md gives the command: its own table and Django's common one."""
    usage = page("usage.md")
    own = table_rows(section(section(usage, f"## `{command}`"), "### Options"))
    common = table_rows(section(usage, "## Django's common options"))
    return documented_flags(own) | documented_flags(common)


@pytest.mark.parametrize("command", COMMANDS)
def test_h_and_help_print_the_usage_and_every_documented_option(lab: Lab, command: str) -> None:
    short = lab.manage(command, "-h")
    long = lab.manage(command, "--help")

    assert (short.code, long.code) == (0, 0), short.text + long.text
    assert short.out == long.out  # -h is --help
    assert short.err == ""
    assert short.out.startswith(f"usage: manage.py {command} [-h]")
    shown = flags(options_in_help(short.out))
    missing = documented_options(command) - shown
    assert missing == set(), f"{command} -h does not show {sorted(missing)}"
    assert nothing_recorded()


# -- --version -------------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_version_prints_djangos_version_and_touches_nothing(lab: Lab, command: str) -> None:
    result = lab.manage(command, "--version")

    assert result.code == 0, result.text
    assert (result.out, result.err) == (django.get_version() + "\n", "")
    # No gate ran (a gate over no worker would record a run), no registry synced.
    assert nothing_recorded()
    assert not TaskPolicy.objects.exists()


# -- -v, --verbosity -------------------------------------------------------------------


def test_verbosity_changes_neither_the_verdict_nor_the_output(lab: Lab) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()
    outputs = []
    for level in ("0", "3"):
        result = lab.manage("prepare_deploy", *FAST, "--timeout", "20", "-v", level)

        assert result.code == 0, result.text
        assert lab.active_queues() == {node: []}  # cleared: held drained by the lease
        # Numbers (run ids, times, seconds left) differ from run to run; nothing else may.
        outputs.append([re.sub(r"\d+", "N", line) for line in human_lines(result.out)])
        assert result.err == ""
        # The deploy is called off: the worker consumes again for the next gate.
        resumed = lab.manage("resume_consumers")
        assert resumed.code == 0, resumed.text
        assert lab.active_queues() == before

    quiet, verbose = outputs
    assert "verdict: clear (exit N), gate run #N" in quiet
    assert verbose == quiet
    assert [run.verdict for run in GateRun.objects.order_by("pk")] == ["clear", "clear"]


# -- --settings, --pythonpath ----------------------------------------------------------


def test_settings_is_read_instead_of_django_settings_module(lab: Lab) -> None:
    # The lab's DJANGO_SETTINGS_MODULE is the demo's settings (a 600 s timeout); the module
    # --settings names reads a 7 s one from TEST_TASKMASTER.
    env = {
        "TEST_TASKMASTER": json.dumps(
            {"CELERY_APP": "project.celery.app", "TIMEOUT": 7, "INTERVAL": 1}
        )
    }
    from_env = lab.manage("prepare_deploy", "--help", env=env)
    named = lab.manage("prepare_deploy", "--help", "--settings", CONTRACT, env=env)
    result = lab.manage("prepare_deploy", "--dry-run", "--json", "--settings", CONTRACT, env=env)

    assert (from_env.code, named.code) == (0, 0), from_env.text + named.text
    assert "(default: TASKMASTER['TIMEOUT'], now 600)" in words(from_env.out)
    assert "(default: TASKMASTER['TIMEOUT'], now 7)" in words(named.out)
    assert result.code == 0, result.text
    report = result.report()
    assert (report["timeout"], report["interval"]) == (7.0, 1.0)


def test_pythonpath_finds_a_settings_module_outside_the_project(lab: Lab, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "tm_options_elsewhere.py").write_text(
        "from project.settings import *  # noqa: F403\n"
        "TASKMASTER = {**TASKMASTER, 'TIMEOUT': 13, 'INTERVAL': 1}  # noqa: F405\n"
    )
    # DJANGO_SETTINGS_MODULE names it; only --pythonpath puts it within reach.
    lost = lab.manage("prepare_deploy", "--dry-run", settings="tm_options_elsewhere")
    found = lab.manage(
        "prepare_deploy",
        "--dry-run",
        "--json",
        "--pythonpath",
        str(elsewhere),
        settings="tm_options_elsewhere",
    )

    assert lost.code == 1  # Django's own failure: the module is nowhere on the path
    assert "No module named 'tm_options_elsewhere'" in lost.err
    assert found.code == 0, found.text
    report = found.report()
    assert (report["timeout"], report["interval"]) == (13.0, 1.0)
    assert nothing_recorded()  # a dry run


# -- --traceback -----------------------------------------------------------------------


def test_traceback_shows_the_traceback_of_a_command_error(lab: Lab) -> None:
    plain = lab.manage("sync_task_registry", settings=CONTRACT, env=NO_APP)
    traced = lab.manage("sync_task_registry", "--traceback", settings=CONTRACT, env=NO_APP)

    assert plain.code == 2, plain.text
    assert (plain.out, plain.err) == ("", f"CommandError: {NO_APP_ERROR}\n")
    assert "Traceback (most recent call last):" in traced.err
    assert traced.err.rstrip().endswith(f"django.core.management.base.CommandError: {NO_APP_ERROR}")
    # Django re-raises the CommandError under --traceback: the process dies of an uncaught
    # exception, Python's exit 1, not the documented 2.
    assert traced.code == 1
    assert not TaskPolicy.objects.exists()


def test_traceback_leaves_the_gates_exit_code_and_sentence_alone(lab: Lab) -> None:
    # prepare_deploy reports its own errors (one sentence, its exit code): no CommandError.
    result = lab.manage("prepare_deploy", "--traceback", settings=CONTRACT, env=NO_APP)

    assert result.code == 2, result.text
    assert human_lines(result.err) == ["verdict: error (exit 2)", f"error: {NO_APP_ERROR}"]
    assert "Traceback" not in result.text
    assert nothing_recorded()


# -- --no-color, --force-color ---------------------------------------------------------

SGR = re.compile(rb"\x1b\[([0-9;]*)m")


def colours(output: bytes) -> list[bytes]:
    """The SGR sequences in ``output`` that set a colour (not bold, dim or a reset)."""
    found = []
    for match in SGR.finditer(output):
        params = [int(p) for p in match.group(1).split(b";") if p]
        if any(30 <= p <= 38 or 40 <= p <= 48 or 90 <= p <= 107 for p in params):
            found.append(match.group(0))
    return found


def on_a_terminal(
    lab: Lab, *args: str, settings: str | None = None, env: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Run ``manage.py`` on a pseudo-terminal; its exit code and every byte it wrote."""
    environ = {**lab.env_for(settings=settings, extra=env), "TERM": "xterm-256color"}
    for variable in ("NO_COLOR", "FORCE_COLOR"):  # rich honours them: the options decide here
        environ.pop(variable, None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environ,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 120
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([master], [], [], left)[0]:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the command exited and closed its side
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    return proc.wait(timeout=30), output


def plain_text(output: bytes) -> str:
    return SGR.sub(b"", output).decode(errors="replace").replace("\r\n", "\n")


# An error each command prints through Django's stderr (OutputWrapper, styled as ERROR).
DJANGO_STYLED_ERRORS = {
    "resume_consumers": (("--run", "999999"), None, None, "there is no gate run #999999"),
    "sync_task_registry": ((), CONTRACT, NO_APP, f"CommandError: {NO_APP_ERROR}"),
}


@pytest.mark.parametrize("command", DJANGO_STYLED_ERRORS)
def test_an_error_on_a_terminal_is_red_and_no_color_takes_the_colour_out(
    lab: Lab, command: str
) -> None:
    args, settings, env, sentence = DJANGO_STYLED_ERRORS[command]
    code, coloured = on_a_terminal(lab, command, *args, settings=settings, env=env)
    plain_code, plain = on_a_terminal(lab, command, *args, "--no-color", settings=settings, env=env)

    assert (code, plain_code) == (2, 2), plain_text(coloured) + plain_text(plain)
    assert sentence in plain_text(coloured)
    assert colours(coloured) == [b"\x1b[31;1m"]  # Django's ERROR style: bold red
    assert sentence in plain_text(plain)
    # No colour. (Django 4.2 calls colorama.init(), whose exit handler writes one reset,
    # "\x1b[0m", to a terminal: a reset sets no colour.)
    assert colours(plain) == [] and not re.search(rb"\x1b\[(?!0m)", plain), plain


def test_no_color_takes_the_colour_out_of_the_live_view(lab: Lab) -> None:
    # No worker, no earlier gate: a quick clear verdict, in the live view on a terminal.
    code, output = on_a_terminal(lab, "prepare_deploy", *FAST, "--timeout", "5", "--no-color")

    assert code == 0, plain_text(output)
    assert "CLEAR" in plain_text(output)  # the verdict panel was drawn
    assert colours(output) == []


# An error each command prints in a pipe: on stderr, whatever prints it.
PIPE_ERRORS = {
    "prepare_deploy": ((), CONTRACT, NO_APP, f"error: {NO_APP_ERROR}"),
    **DJANGO_STYLED_ERRORS,
}


@pytest.mark.parametrize("command", PIPE_ERRORS)
def test_force_color_leaves_an_error_in_a_pipe_plain(lab: Lab, command: str) -> None:
    """docs/usage.md: Taskmaster's output is never coloured outside a terminal, so a CI log
    or a grep reads it as it is; --force-color (Django's) changes nothing there."""
    args, settings, env, sentence = PIPE_ERRORS[command]
    result = lab.manage(command, *args, "--force-color", settings=settings, env=env)

    assert result.code == 2, result.text
    assert sentence in result.err
    assert "\x1b[" not in result.text


# -- exit 2: a task module that cannot be imported -------------------------------------

BROKEN_TASKS = (
    "cannot load the tasks of the Celery app 'tm_options': ValueError('half-written task module')"
)


@pytest.fixture
def half_written_tasks(tmp_path: Path) -> dict[str, str]:
    """The environment that makes TASKMASTER['CELERY_APP'] an app on the lab's broker (the
    project's CELERY_* settings) whose one task module raises when imported."""
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "tm_options_app.py").write_text(
        "from celery import Celery\n"
        "app = Celery('tm_options', set_as_current=False)\n"
        "app.config_from_object('django.conf:settings', namespace='CELERY')\n"
        "app.conf.imports = ['tm_options_tasks']\n"
    )
    (modules / "tm_options_tasks.py").write_text("raise ValueError('half-written task module')\n")
    return {
        "PYTHONPATH": str(modules),
        "TEST_TASKMASTER": json.dumps({"CELERY_APP": "tm_options_app.app"}),
    }


def test_a_task_module_that_fails_to_import_stops_the_gate_with_exit_2(
    lab: Lab, half_written_tasks: dict[str, str]
) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()

    result = lab.manage(
        "prepare_deploy",
        *FAST,
        "--timeout",
        "10",
        "--json",
        settings=CONTRACT,
        env=half_written_tasks,
    )

    assert result.code == 2, result.text
    report = result.report()
    assert report["error"] == BROKEN_TASKS
    assert report["broker"] == lab.broker_label  # the workers' broker: they were in reach
    assert human_lines(result.err) == ["verdict: error (exit 2)", f"error: {BROKEN_TASKS}"]
    assert "Traceback" not in result.text
    assert lab.active_queues() == before == {node: [lab.queue]}
    assert nothing_recorded()


def test_a_task_module_that_fails_to_import_is_exit_2_for_sync_task_registry(
    lab: Lab, half_written_tasks: dict[str, str]
) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()

    result = lab.manage("sync_task_registry", settings=CONTRACT, env=half_written_tasks)

    assert result.code == 2, result.text
    assert (result.out, result.err) == ("", f"CommandError: {BROKEN_TASKS}\n")
    assert lab.active_queues() == before == {node: [lab.queue]}
    assert not TaskPolicy.objects.exists()
    assert nothing_recorded()


# -- exit 2: bad input, nothing touched ------------------------------------------------


def test_an_interval_longer_than_the_timeout_touches_nothing(lab: Lab) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()

    result = lab.manage("prepare_deploy", "--interval", "10", "--timeout", "5")

    assert result.code == 2, result.text
    assert result.out == ""
    assert human_lines(result.err) == [
        "verdict: error (exit 2)",
        "error: the interval (10 s) is longer than the timeout (5 s): the gate would poll "
        "once. Shorten --interval or raise --timeout.",
    ]
    assert lab.active_queues() == before == {node: [lab.queue]}
    assert nothing_recorded()


def test_an_unknown_option_is_exit_2_and_touches_nothing(lab: Lab) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10", "--json", "--drain-harder")

    assert result.code == 2, result.text
    assert result.report()["error"] == "unrecognized arguments: --drain-harder"
    assert "prepare_deploy: error: unrecognized arguments: --drain-harder" in result.err
    assert "Traceback" not in result.text
    assert lab.active_queues() == before == {node: [lab.queue]}
    assert nothing_recorded()


def test_a_queue_no_worker_consumes_is_exit_2_and_touches_nothing(lab: Lab) -> None:
    node = lab.start_worker("w1").name
    before = lab.active_queues()

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "10", "--queue", "nowhere")

    assert result.code == 2, result.text
    assert result.out == ""
    assert human_lines(result.err) == [
        "verdict: error (exit 2)",
        f"error: no worker matches --queue 'nowhere': 1 answered ({node}). If the one you "
        "meant is gone already, pass --allow-no-workers. Nothing was touched.",
    ]
    assert lab.active_queues() == before == {node: [lab.queue]}
    assert nothing_recorded()
