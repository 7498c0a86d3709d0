"""Every exit on contract, wherever the gate runs: pipes, terminals, bad input, broken parts.

Each gate runs as a subprocess against real RabbitMQ (or Redis where said), real workers and
PostgreSQL. Where the output is the contract (error sentences, exit codes, JSON keys), it is
asserted exactly.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from taskmaster.models import GateRun
from tests.support.lab import ROOT, Lab, drained, finish, wait_for

FAST = ("--interval", "1")


def busy_worker(lab: Lab) -> tuple[str, dict[str, list[str]]]:
    """A worker running a blocking task, and every worker's queues before any gate."""
    worker = lab.start_busy_worker("w1", queues=[lab.queue, f"{lab.queue}-x"])
    return worker.name, lab.active_queues()


def closed_run() -> GateRun:
    run = GateRun.objects.get()
    assert not run.is_open
    return run


# -- output can never stop a restore -------------------------------------------------


def test_a_pipe_closed_after_one_line_does_not_stop_the_restore(lab: Lab) -> None:
    _, before = busy_worker(lab)
    gate = lab.start_gate(*FAST, "--timeout", "4")
    assert gate.stdout is not None
    gate.stdout.readline()  # `| head -1`
    gate.stdout.close()
    _, err = gate.communicate(timeout=60)

    assert gate.returncode == 1, err
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    assert lab.active_queues() == before
    assert closed_run().verdict == "blocked"


def test_closed_stdout_and_stderr_do_not_stop_the_gate(lab: Lab) -> None:
    _, before = busy_worker(lab)
    shell = f"exec {sys.executable} manage.py prepare_deploy --interval 1 --timeout 3 >&- 2>&-"

    proc = subprocess.run(["bash", "-c", shell], cwd=ROOT, env=lab.env, timeout=60)

    assert proc.returncode == 1
    assert lab.active_queues() == before
    assert closed_run().verdict == "blocked"


def test_sighup_from_a_terminal_that_went_away_restores_and_exits_129(lab: Lab) -> None:
    node, before = busy_worker(lab)
    terminal, screen = pty.openpty()
    gate = subprocess.Popen(
        [sys.executable, "manage.py", "prepare_deploy", *FAST, "--timeout", "120"],
        cwd=ROOT,
        env=lab.env,
        stdin=screen,
        stdout=screen,
        stderr=screen,
        start_new_session=True,
    )
    os.close(screen)
    wait_for(lambda: drained(lab, node))
    os.close(terminal)  # the SSH session drops: writes to the terminal now fail...
    gate.send_signal(signal.SIGHUP)  # ...and the kernel sends SIGHUP

    assert gate.wait(timeout=60) == 129
    assert lab.active_queues() == before
    assert lab.leases([node]) == {node: {}}
    assert closed_run().verdict == "interrupted"


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGHUP, 129), (signal.SIGTERM, 143)])
def test_a_stop_signal_gives_one_json_report(lab: Lab, signum: int, code: int) -> None:
    node, before = busy_worker(lab)
    gate = lab.start_gate(*FAST, "--timeout", "120", "--json")
    wait_for(lambda: drained(lab, node))
    gate.send_signal(signum)
    result = finish(gate)

    report = result.report()
    assert (result.code, report["verdict"], report["restored"]) == (code, "interrupted", True)
    assert lab.active_queues() == before


# -- no blind clear ------------------------------------------------------------------


@pytest.mark.parametrize("lab", ["redis"], indirect=True)
def test_no_worker_on_the_wrong_broker_after_a_run_that_drained_workers_is_exit_2(
    lab: Lab,
) -> None:
    node = lab.start_worker("w1").name
    first = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--hold", "2")
    assert first.code == 0, first.text
    run = GateRun.objects.get()
    wrong = lab.broker_url.rsplit("/", 1)[0] + "/15"  # another Redis database: no worker

    result = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--json", broker_url=wrong)

    assert result.code == 2, result.text
    assert result.report()["error"] == (
        f"no worker answered on {wrong}, but gate run #{run.pk} "
        f"({run.started_at:%Y-%m-%d %H:%M %Z}) drained {node}. Is the broker URL (its vhost, "
        "its database number) the one the workers use? If the fleet is down on purpose, pass "
        "--allow-no-workers. Nothing was touched."
    )
    assert GateRun.objects.count() == 1  # no run opened

    allowed = lab.manage(
        "prepare_deploy", *FAST, "--timeout", "5", "--allow-no-workers", broker_url=wrong
    )
    assert allowed.code == 0, allowed.text
    assert "no worker answered: nothing to drain" in allowed.out


@pytest.mark.parametrize("lab", ["redis"], indirect=True)
def test_a_database_with_no_earlier_run_clears_with_no_worker(lab: Lab) -> None:
    result = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--json")

    assert result.code == 0, result.text
    report = result.report()
    assert (report["verdict"], report["workers"]) == ("clear", [])
    assert report["notes"] == [
        "no worker answered: nothing to drain (is the broker URL right?)",
        # and the broker agrees: nobody listens to remote control, so nobody is silent
        "broker: 0 worker(s) answered; 0 connection(s) listen to remote control "
        "(PUBLISH and CLIENT LIST)",
    ]


# -- bad input, broken parts: exit 2, one sentence, nothing touched -----------------


ABOVE_0 = "must be a finite number of seconds above 0"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--timeout", "inf"], f"argument --timeout: 'inf' {ABOVE_0}"),
        (["--timeout", "nan"], f"argument --timeout: 'nan' {ABOVE_0}"),
        (["--interval", "-1"], f"argument --interval: '-1' {ABOVE_0}"),
        (["--hold", "0"], f"argument --hold: '0' {ABOVE_0}"),
        (["--timeout", "soon"], "argument --timeout: 'soon' is not a number of seconds"),
    ],
)
def test_a_bad_option_is_exit_2_with_one_json_object(
    lab: Lab, options: list[str], message: str
) -> None:
    node = lab.start_worker("w1").name

    result = lab.manage("prepare_deploy", "--json", *options)

    assert result.code == 2, result.text
    assert result.report()["error"] == message
    assert f"prepare_deploy: error: {message}" in result.err
    assert "Traceback" not in result.text
    assert lab.active_queues() == {node: [lab.queue]}
    assert not GateRun.objects.exists()


def test_an_interval_longer_than_the_timeout_is_exit_2(lab: Lab) -> None:
    result = lab.manage("prepare_deploy", "--interval", "10", "--timeout", "5", "--json")

    assert result.code == 2, result.text
    assert result.report()["error"] == (
        "the interval (10 s) is longer than the timeout (5 s): the gate would poll once. "
        "Shorten --interval or raise --timeout."
    )


SETTINGS_ERRORS = [
    ([["TIMEOUT", 30]], "TASKMASTER must be a dict, not a list."),
    ({"TIMEOUT": "600"}, "TASKMASTER['TIMEOUT'] must be a number of seconds above 0, not '600'."),
    ({"TIMOUT": 30}, "TASKMASTER['TIMOUT'] is not a Taskmaster setting."),
    (
        {"TIMEOUT": 10, "INTERVAL": 30},
        "TASKMASTER['INTERVAL'] is longer than TASKMASTER['TIMEOUT']: the gate would poll once.",
    ),
]


@pytest.mark.parametrize("command", ["prepare_deploy", "resume_consumers"])
@pytest.mark.parametrize(("taskmaster", "message"), SETTINGS_ERRORS)
def test_bad_settings_are_exit_2_with_one_sentence(
    lab: Lab, command: str, taskmaster: object, message: str
) -> None:
    result = lab.manage(
        command,
        settings="tests.support.contract_settings",
        env={"TEST_TASKMASTER": json.dumps(taskmaster)},
    )

    assert result.code == 2, result.text
    assert result.err.strip().endswith(f"invalid TASKMASTER settings: {message}")
    assert "Traceback" not in result.text


def test_a_celery_app_that_cannot_be_imported_is_exit_2(lab: Lab) -> None:
    result = lab.manage(
        "prepare_deploy",
        "--json",
        settings="tests.support.contract_settings",
        env={"TEST_TASKMASTER": json.dumps({"CELERY_APP": "nowhere.celery.app"})},
    )

    assert result.code == 2, result.text
    assert result.report()["error"] == (
        "cannot find the Celery app; tried nowhere.celery.app (No module named 'nowhere'). Set "
        "TASKMASTER['CELERY_APP'] to your Celery app as `celery -A` names it, e.g. "
        "'config.celery_app' or 'proj.celery:app'"
    )


@pytest.mark.parametrize("command", ["prepare_deploy", "resume_consumers"])
def test_a_broker_scheme_no_transport_knows_is_exit_2(lab: Lab, command: str) -> None:
    result = lab.manage(command, broker_url="amqpp://deployer:s3cret@rabbit:5672//")

    assert result.code == 2, result.text
    assert result.err.strip().endswith(
        "cannot use the broker amqpp://deployer:**@rabbit:5672//: No such transport: amqpp.  "
        "Did you mean amqp? Check CELERY_BROKER_URL (its scheme names the transport) and that "
        "the transport's library is installed."
    )
    assert "s3cret" not in result.text


@pytest.mark.parametrize("command", ["prepare_deploy", "resume_consumers"])
def test_the_redis_transport_without_its_library_is_exit_2(
    lab: Lab, command: str, tmp_path: Path
) -> None:
    hidden = tmp_path / "no-redis" / "redis"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError(\"No module named 'redis'\")\n")
    result = lab.manage(
        command,
        broker_url="redis://127.0.0.1:6379/11",
        env={"PYTHONPATH": str(hidden.parent)},
    )

    assert result.code == 2, result.text
    assert (
        "cannot use the broker redis://127.0.0.1:6379/11: its redis transport cannot be loaded "
        "(AttributeError: 'NoneType' object has no attribute 'Redis'); is the library it needs "
        "installed? Check CELERY_BROKER_URL"
    ) in result.err
    assert "Traceback" not in result.text


@pytest.mark.parametrize("command", ["prepare_deploy", "resume_consumers"])
def test_a_database_that_cannot_be_used_is_exit_2(lab: Lab, command: str) -> None:
    node = lab.start_worker("w1").name
    nowhere = lab.database_url.rsplit("/", 1)[0] + "/taskmaster_no_such_database"
    lab.database_url, kept = nowhere, lab.database_url

    result = lab.manage(command)

    lab.database_url = kept
    assert result.code == 2, result.text
    assert "cannot use the database: " in result.err
    assert 'database "taskmaster_no_such_database" does not exist' in result.err
    assert "Nothing was touched." in result.err
    assert "Traceback" not in result.text
    assert lab.active_queues() == {node: [lab.queue]}


def test_an_unreachable_broker_is_exit_3_with_one_json_object(lab: Lab) -> None:
    result = lab.manage(
        "prepare_deploy", "--json", broker_url="amqp://deployer:s3cret@127.0.0.1:1//"
    )

    assert result.code == 3, result.text
    assert result.report()["error"].startswith(
        "cannot reach the broker at amqp://deployer:**@127.0.0.1:1//: "
    )
    assert "s3cret" not in result.text


@pytest.mark.parametrize("command", ["prepare_deploy", "resume_consumers"])
def test_a_login_the_broker_refuses_is_exit_3(lab: Lab, command: str) -> None:
    # RabbitMQ answers a wrong password with 403 ACCESS_REFUSED, which py-amqp raises as a
    # channel error, not a connection error: it must still read as a broker out of reach.
    node = lab.start_worker("w1").name
    refused = lab.broker_url.replace("guest:guest@", "guest:n0t-the-password@")
    assert refused != lab.broker_url

    result = lab.manage(command, broker_url=refused)

    assert result.code == 3, result.text
    label = refused.replace("n0t-the-password", "**")
    assert f"cannot reach the broker at {label}: (0, 0): (403) ACCESS_REFUSED" in result.err
    assert "Traceback" not in result.text
    assert "n0t-the-password" not in result.text
    assert lab.active_queues() == {node: [lab.queue]}


# -- an unexpected error inside the gate ---------------------------------------------


def test_an_unexpected_error_restores_first_logs_the_traceback_and_exits_6(lab: Lab) -> None:
    node, before = busy_worker(lab)

    result = lab.manage(
        "prepare_deploy", *FAST, "--json", module="tests.support.faulty_manage", timeout=60
    )

    assert result.code == 6, result.text
    report = result.report()
    assert report["error"] == "the gate failed: RuntimeError('injected fault')"
    assert (report["verdict"], report["restored"]) == ("error", True)
    assert "Traceback" in result.err and "RuntimeError: injected fault" in result.err
    assert lab.active_queues() == before
    run = closed_run()
    assert run.verdict == "error"
    log = (lab.var_dir / "taskmaster.log").read_text()  # the project's LOGGING: a file
    assert f"gate run #{run.pk} opened on {lab.broker_label}" in log
    assert f"ERROR taskmaster: gate run #{run.pk} failed; restoring its consumers" in log
    assert f"gate run #{run.pk}: consumers restored on {node}" in log
    assert f"gate run #{run.pk}: error (exit 6)" in log


# -- --json on every other exit ------------------------------------------------------


def test_a_second_gate_on_the_same_workers_is_exit_4_with_one_json_object(lab: Lab) -> None:
    node, _ = busy_worker(lab)
    first = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, node))

    second = lab.manage("prepare_deploy", *FAST, "--timeout", "5", "--json")

    assert second.code == 4, second.text
    run = GateRun.objects.get()
    assert second.report()["error"].startswith(
        f"another drain is open on {node}: gate run #{run.pk}, opened "
    )
    first.send_signal(signal.SIGINT)
    assert finish(first).code == 130


def test_dry_run_says_clear_or_blocked_and_cancels_nothing(lab: Lab) -> None:
    node = lab.start_worker("w1").name
    idle = lab.manage("prepare_deploy", "--dry-run", "--json")
    lab.send("generate_report", 60)
    lab.wait_active(node)
    busy = lab.manage("prepare_deploy", "--dry-run", "--json")
    plain = lab.manage("prepare_deploy", "--dry-run")

    assert (idle.code, busy.code, plain.code) == (0, 1, 1)
    assert [idle.report()[k] for k in ("verdict", "dry_run", "blockers")] == ["clear", True, []]
    assert [busy.report()[k] for k in ("verdict", "dry_run")] == ["blocked", True]
    assert [b["name"] for b in busy.report()["blockers"]] == ["project.tasks.generate_report"]
    assert "verdict: blocked (dry run, exit 1): 1 blocker(s) (1 task name(s))" in plain.out
    assert "Nothing was cancelled." in plain.out
    assert lab.active_queues() == {node: [lab.queue]}
    assert not GateRun.objects.exists()


# -- resume_consumers ----------------------------------------------------------------


def test_resume_with_no_open_drain_restores_nothing_already_restored(lab: Lab) -> None:
    node, _ = busy_worker(lab)
    assert lab.manage("prepare_deploy", *FAST, "--timeout", "2").code == 1
    run = closed_run()
    # Someone drains the worker on purpose afterwards: resume must not undo that.
    lab.app.control.cancel_consumer(lab.queue, destination=[node], reply=True)
    wait_for(lambda: lab.active_queues([node])[node] == [f"{lab.queue}-x"])

    result = lab.manage("resume_consumers")

    assert result.code == 0, result.text
    assert result.out == (
        f"No open drain: the latest, gate run #{run.pk} (blocked), was restored at "
        f"{run.restored_at:%Y-%m-%d %H:%M:%S %Z}. Nothing to do.\n"
    )
    assert lab.active_queues([node])[node] == [f"{lab.queue}-x"]


def test_resume_refuses_a_run_recorded_on_another_broker(lab: Lab) -> None:
    run = GateRun.objects.create(
        timeout=60,
        interval=1,
        broker="amqp://deployer:**@rabbit.prod:5672//",
        snapshot={"w1@prod": [{"name": "celery"}]},
    )

    result = lab.manage("resume_consumers")

    assert result.code == 2, result.text
    assert result.err == (
        f"gate run #{run.pk} drained the workers of amqp://deployer:**@rabbit.prod:5672//, but "
        f"this project's broker is {lab.broker_label}: run resume_consumers where "
        "the workers' broker is configured. Nothing was restored.\n"
    )
    assert GateRun.objects.get().is_open


def test_resume_run_n_says_what_it_restores(lab: Lab) -> None:
    node, before = busy_worker(lab)
    gate = lab.start_gate(*FAST, "--timeout", "120")
    wait_for(lambda: drained(lab, node))
    gate.kill()
    gate.wait()
    run = GateRun.objects.get()

    result = lab.manage("resume_consumers", "--run", str(run.pk))
    again = lab.manage("resume_consumers", "--run", str(run.pk))

    assert result.code == 0, result.text
    assert result.out.splitlines()[0] == (
        f"Restoring gate run #{run.pk} (killed before its verdict, opened "
        f"{run.started_at:%Y-%m-%d %H:%M:%S %Z} by {run.opened_by}): "
        f"{node} ({lab.queue}, {lab.queue}-x)"
    )
    assert result.out.splitlines()[-1] == (
        "Drain closed: every worker consumes the queues it recorded again."
    )
    assert lab.active_queues() == before
    run.refresh_from_db()
    assert again.out == (
        f"gate run #{run.pk} was restored at {run.restored_at:%Y-%m-%d %H:%M:%S %Z}: "
        "nothing to do.\n"
    )
