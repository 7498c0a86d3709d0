"""The deploy recipes of docs/deploy/: linted with their ecosystems' tools, and run for real.

Each file is read from its page (the page is the one copy), changed only where this machine
needs it (paths, the user, a redirect target), and run against the demo project, RabbitMQ,
PostgreSQL and real ``celery worker`` processes. supervisor runs for real. There is no
systemd, Docker engine or cluster here, so the units' and containers' command lines run as
plain processes, stopped as their managers stop them. The CI pipelines' steps run one by one,
in the environment their runners give them.
"""

from __future__ import annotations

import contextlib
import getpass
import grp
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskmaster.models import GateRun
from tests.support.lab import ROOT, Lab, Worker, finish, valid_report, wait_for
from tests.support.recipes.actions import Job, Step
from tests.support.recipes.files import (
    VENV,
    VENV_BIN,
    bare_env,
    recipe_file,
    spawn,
    stop_main_process,
    templated,
    workspace,
    write,
)
from tests.support.recipes.tools import lint, tool
from tests.support.supervisor import SUPERVISORD_CONF as BASE_CONF

pytestmark = pytest.mark.recipes

HOST = socket.gethostname()  # what Celery's %h and systemd's %H expand to
QUEUE = "celery"  # the demo's default queue: what the recipes' workers consume (no -Q)
# A release step that enqueues three tasks while the workers are down (a deploy's traffic).
ENQUEUE = (
    "import os, sys; from celery import Celery; "
    "app = Celery(broker=os.environ['CELERY_BROKER_URL']); "
    "ids = [app.send_task('project.tasks.resize_images', args=(0.1,), queue='celery').id "
    "for _ in range(3)]; open(sys.argv[1], 'w').write(' '.join(ids))"
)


def succeeded(log: str, task_id: str) -> bool:
    return re.search(rf"Task \S+\[{task_id}\] succeeded", log) is not None


def clean_default_queue(lab: Lab) -> None:
    """Nothing left in ``celery`` by an earlier run: the recipes' workers consume it."""
    lab.app.control.purge()


def run_sh(script: Path, *args: str, env: dict[str, str], timeout: float = 120) -> Any:
    return subprocess.run(
        ["sh", str(script), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


# -- supervisor ----------------------------------------------------------------------------

SUPERVISORD_CONF = (
    BASE_CONF
    + """
[include]
files = {dir}/conf.d/*.conf
"""
)


@dataclass
class Supervised:
    """The test's supervisord: the deploy script's environment, the workers, their logs."""

    env: dict[str, str]
    nodes: list[str]
    logs: Path
    ctl: list[str]
    dir: Path

    def pids(self) -> set[str]:
        return set(
            subprocess.run([*self.ctl, "pid", "all"], capture_output=True, text=True).stdout.split()
        )

    def worker_logs(self) -> str:
        return "".join(path.read_text() for path in self.logs.glob("*.log"))


@pytest.fixture
def supervisor(lab: Lab, tmp_path: Path) -> Iterator[Supervised]:
    """A supervisord of the test's own, with the recipe's program section, running."""
    conf_dir = tmp_path / "supervisor"
    conf = write(conf_dir / "supervisord.conf", SUPERVISORD_CONF.format(dir=conf_dir))
    program = recipe_file("supervisor.md", "/etc/supervisor/conf.d/celery-worker.conf")
    logs = tmp_path / "log"
    logs.mkdir()
    write(
        conf_dir / "conf.d" / "celery-worker.conf",
        templated(
            program,
            {
                "/srv/app/venv/": f"{VENV}/",
                "/srv/app": str(ROOT),
                "/var/log/celery": str(logs),
                "user=app": f"user={getpass.getuser()}",
            },
        ),
    )
    # The deploy script's supervisorctl is this one: the test's supervisord, not the system's.
    shims = tmp_path / "bin"
    write(
        shims / "supervisorctl",
        f'#!/bin/sh\nexec {tool("supervisorctl")} -c {conf} "$@"\n',
        executable=True,
    )
    env = lab.env_for()
    del env["DJANGO_SETTINGS_MODULE"]  # the program section's environment= sets it
    env["PATH"] = f"{shims}:{env['PATH']}"
    clean_default_queue(lab)
    daemon = subprocess.Popen(
        [tool("supervisord"), "-c", str(conf)], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    nodes = [f"worker{n}@{HOST}" for n in range(2)]
    ctl = [str(shims / "supervisorctl")]
    try:
        wait_for(lambda: all(lab.ping(node) for node in nodes), timeout=60)
        yield Supervised(env, nodes, logs, ctl, conf_dir)
    finally:
        pids = subprocess.run([*ctl, "pid", "all"], capture_output=True, text=True).stdout
        subprocess.run([*ctl, "shutdown"], capture_output=True, timeout=60)
        try:
            daemon.wait(timeout=60)
        finally:
            for pid in map(int, re.findall(r"^\d+$", pids, re.M)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            if daemon.poll() is None:
                daemon.kill()


@pytest.mark.timeout(180)
def test_supervisor_recipe(lab: Lab, tmp_path: Path, supervisor: Supervised) -> None:
    nodes, env = supervisor.nodes, supervisor.env
    script = write(
        tmp_path / "deploy-workers.sh",
        templated(
            recipe_file("supervisor.md", "/srv/app/deploy-workers.sh"),
            {
                "/srv/app/venv/": f"{VENV}/",
                "/srv/app/var/": f"{tmp_path}/var/",
                "/srv/app": str(ROOT),
            },
        ),
    )
    lint("shellcheck", script)
    consuming = {node: [QUEUE] for node in nodes}
    assert lab.active_queues(nodes) == consuming

    # A release that fails after the gate cleared: the workers come back, consuming.
    failed = run_sh(script, "false", env=env)

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "verdict: clear (exit 0)" in failed.stdout
    assert "deploy failed (exit 1): starting the workers" in failed.stderr
    assert "Drain closed: every worker consumes the queues it recorded again." in failed.stdout
    assert lab.active_queues(nodes) == consuming
    assert lab.leases(nodes) == {node: {} for node in nodes}
    assert GateRun.objects.get().restored_at is not None

    # A deploy while a short task runs; the release enqueues tasks while the workers are down.
    pids = supervisor.pids()
    short = lab.send("send_receipt", 3, queue=QUEUE)
    # Interruptible, and still running at the stop: the warm shutdown lets it end.
    late = lab.send("resize_images", 7, queue=QUEUE)
    wait_for(lambda: sum(len(lab.active_tasks(node)) for node in nodes) == 2)
    queued = tmp_path / "queued.txt"

    deployed = run_sh(script, sys.executable, "-c", ENQUEUE, str(queued), env=env)

    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "project.tasks.send_receipt: 1 active on worker" in deployed.stdout  # waited for it
    report = valid_report(json.loads((tmp_path / "var" / "gate.json").read_text()))
    assert (report["verdict"], sorted(w["hostname"] for w in report["workers"])) == (
        "clear",
        nodes,
    )
    assert supervisor.pids().isdisjoint(pids)  # new worker processes
    daemon_log = (supervisor.dir / "supervisord.log").read_text()
    # Two stops per deploy, each a warm shutdown that ended by itself (no SIGKILL).
    assert len(re.findall(r"stopped: celery-worker-\d \(exit status 0\)", daemon_log)) == 4
    assert "SIGKILL" not in daemon_log
    logs = supervisor.worker_logs()
    assert succeeded(logs, short) and succeeded(logs, late)
    assert "WorkerLostError" not in logs  # no pool process was killed mid-task
    ids = queued.read_text().split()
    wait_for(lambda: all(succeeded(supervisor.worker_logs(), task) for task in ids), timeout=30)
    assert lab.active_queues(nodes) == consuming


# -- systemd -------------------------------------------------------------------------------


def unit_entries(text: str) -> dict[str, dict[str, str]]:
    """A unit file's sections and their (last) values; comments and blank lines skipped."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key] = value
    return sections


def expand(value: str, instance: str) -> str:
    """systemd's specifiers, the three the unit uses; any other fails the test."""
    return re.sub(r"%.", lambda m: {"%i": instance, "%H": HOST, "%%": "%"}[m[0]], value)


def exec_line(value: str, instance: str) -> list[str]:
    """An Exec*= line as systemd runs it: "-" only ignores the exit code."""
    assert value[0] not in "@+!:", f"unexpected prefix in {value!r}"
    return shlex.split(expand(value.removeprefix("-"), instance))


def seconds(value: str) -> float:
    """A duration as systemd (``300``, ``5min``) or Compose's normalized output (``2m0s``)."""
    if value.isdigit():
        return float(value)
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m(?:in)?)?(?:(\d+)s)?", value)
    assert match and value, f"cannot read {value!r} as a duration"
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return float(hours * 3600 + minutes * 60 + secs)


@pytest.mark.timeout(120)
def test_systemd_recipe(lab: Lab, tmp_path: Path) -> None:
    env_file = write(
        tmp_path / "app.env",
        "".join(
            f"{key}={lab.env[key]}\n"
            for key in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "DATABASE_URL")
        )
        + f"TASKMASTER_VAR_DIR={lab.var_dir}\n",
    )
    paths = {
        "/srv/app/venv/": f"{VENV}/",
        "/srv/app/.env": str(env_file),
        "/srv/app": str(ROOT),
        "User=app": f"User={getpass.getuser()}",
        "Group=app": f"Group={grp.getgrgid(os.getgid()).gr_name}",
    }
    units = tmp_path / "units"
    service = write(
        units / "celery-worker@.service",
        templated(recipe_file("systemd.md", "/etc/systemd/system/celery-worker@.service"), paths),
    )
    target = write(
        units / "celery-workers.target",
        recipe_file("systemd.md", "/etc/systemd/system/celery-workers.target"),
    )
    verified = lint(
        "systemd-analyze", "verify", "--man=no", target, units / "celery-worker@w1.service"
    )
    assert verified == ""  # not even a warning
    # The deploy script is the supervisor recipe's (which runs for real), systemctl for
    # supervisorctl.
    script = recipe_file("systemd.md", "/srv/app/deploy-workers.sh")
    lint("shellcheck", write(tmp_path / "deploy-workers.sh", script))
    theirs = recipe_file("supervisor.md", "/srv/app/deploy-workers.sh").splitlines()
    differ = [(a, b) for a, b in zip(script.splitlines(), theirs, strict=True) if a != b]
    assert differ and all("systemctl " in a and "supervisorctl " in b for a, b in differ)

    unit = unit_entries(service.read_text())["Service"]
    assert (unit["KillMode"], unit["KillSignal"], unit["Type"]) == ("mixed", "SIGTERM", "exec")
    environment = dict(
        line.split("=", 1) for line in Path(unit["EnvironmentFile"]).read_text().splitlines()
    )
    env, cwd = bare_env(environment), Path(unit["WorkingDirectory"])
    other = lab.start_worker("other").name  # a worker of another unit, or another host
    clean_default_queue(lab)
    worker = spawn(lab, f"w1@{HOST}", exec_line(unit["ExecStart"], "w1"), env, cwd)
    short = lab.send("send_receipt", 3, queue=QUEUE)
    lab.wait_active(worker.name)
    stop_timeout = seconds(unit["TimeoutStopSec"])

    gate = subprocess.run(
        exec_line(unit["ExecStop"], "w1"), cwd=cwd, env=env, capture_output=True, text=True,
        timeout=stop_timeout,
    )  # fmt: skip

    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert f"project.tasks.send_receipt: 1 active on {worker.name}" in gate.stdout
    assert "verdict: clear (exit 0)" in gate.stdout
    assert lab.active_queues([worker.name, other]) == {worker.name: [], other: [lab.queue]}
    # Drained already (as after the deploy script's gate): the unit's gate clears at once.
    again = subprocess.run(
        exec_line(unit["ExecStop"], "w1"), cwd=cwd, env=env, capture_output=True, text=True,
        timeout=stop_timeout,
    )  # fmt: skip
    assert again.returncode == 0 and "verdict: clear" in again.stdout, again.stdout + again.stderr

    stop_main_process(worker, signal.Signals[unit["KillSignal"]], within=stop_timeout)

    assert worker.process.returncode == 0
    assert succeeded(worker.logs(), short)
    assert "WorkerLostError" not in worker.logs()


# -- Docker Compose ------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_compose_recipe(lab: Lab, tmp_path: Path) -> None:
    project = tmp_path / "compose"
    compose = write(project / "compose.yaml", recipe_file("compose.md", "compose.yaml"))
    write(
        project / ".env",
        "".join(
            f"{key}={lab.env[key]}\n"
            for key in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "DATABASE_URL")
        )
        + f"TASKMASTER_VAR_DIR={lab.var_dir}\n",
    )
    lint("docker-compose", "--profile", "tools", "config", "--quiet", cwd=project)
    lint("shellcheck", write(project / "deploy.sh", recipe_file("compose.md", "deploy.sh")))
    lint("check-jsonschema", "--builtin-schema", "vendor.compose-spec", compose)
    config = json.loads(
        lint("docker-compose", "--profile", "tools", "config", "--format", "json", cwd=project)
    )["services"]
    worker_spec, manage = config["worker"], config["manage"]
    assert (worker_spec["init"], worker_spec["stop_signal"]) == (True, "SIGTERM")
    assert worker_spec["entrypoint"] is None  # the image's, if any, must exec "$@"
    grace = seconds(worker_spec["stop_grace_period"])
    (volume,) = manage["volumes"]
    reports = Path(volume["source"])
    # The image's working directory is the project; its PATH has celery and python.
    env = bare_env(worker_spec["environment"])

    clean_default_queue(lab)
    worker = spawn(lab, f"worker@{HOST}", worker_spec["command"], env, ROOT)
    short = lab.send("send_receipt", 3, queue=QUEUE)
    lab.wait_active(worker.name)

    gate_argv = [
        arg.replace(volume["target"], str(reports))
        for arg in manage["entrypoint"] + manage["command"]
    ]
    reports.mkdir()
    gate = subprocess.run(gate_argv, cwd=ROOT, env=bare_env(manage["environment"]),
                          capture_output=True, text=True, timeout=120)  # fmt: skip

    assert gate.returncode == 0, gate.stdout + gate.stderr
    report = valid_report(json.loads((reports / "gate.json").read_text()))
    assert report["verdict"] == "clear"
    assert [w["hostname"] for w in report["workers"]] == [worker.name]
    # docker compose stop: tini passes SIGTERM on to Celery's main process.
    stop_main_process(worker, signal.SIGTERM, within=grace)
    assert worker.process.returncode == 0
    assert succeeded(worker.logs(), short)
    queued = [lab.send("resize_images", 0.1, queue=QUEUE) for _ in range(2)]
    migrate = subprocess.run(
        [*manage["entrypoint"], "migrate", "--noinput"], cwd=ROOT,
        env=bare_env(manage["environment"]), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    new = spawn(lab, f"worker@{HOST}", worker_spec["command"], env, ROOT)  # up --detach

    wait_for(lambda: all(succeeded(new.logs(), task) for task in queued), timeout=30)
    assert lab.active_queues([new.name]) == {new.name: [QUEUE]}


# -- Kubernetes ----------------------------------------------------------------------------

POD = "celery-worker-6d5f8b7c9-x2x7q"  # a pod's name: its HOSTNAME


@pytest.mark.timeout(120)
def test_kubernetes_recipe(lab: Lab, tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "celery-worker.yaml", recipe_file("kubernetes.md", "celery-worker.yaml")
    )
    documents = list(yaml.safe_load_all(manifest.read_text()))
    assert [d["kind"] for d in documents] == ["Deployment", "PodDisruptionBudget"]
    lint("kubernetes-validate", "--strict", manifest)
    pod = documents[0]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    shell, flag, command = container["command"]
    hook_shell, hook_flag, hook = container["lifecycle"]["preStop"]["exec"]["command"]
    assert (shell, flag, hook_shell, hook_flag) == ("sh", "-c", "sh", "-c")
    assert command.startswith("exec celery ") and '-n "worker@$HOSTNAME"' in command
    assert hook.startswith("exec python manage.py prepare_deploy ")
    assert '--worker "*@$HOSTNAME"' in hook and "--allow-no-workers" in hook
    gate_timeout = float(re.search(r"--timeout (\d+)", hook)[1])  # type: ignore[index]
    assert gate_timeout + 60 <= pod["terminationGracePeriodSeconds"]

    env = bare_env({**{k: lab.env[k] for k in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL",
                                                "DATABASE_URL")},
                    "TASKMASTER_VAR_DIR": str(lab.var_dir), "HOSTNAME": POD})  # fmt: skip
    other = lab.start_worker("other").name  # another pod's worker
    clean_default_queue(lab)
    worker = spawn(lab, f"worker@{POD}", [shell, flag, command], env, ROOT)
    # exec: the process the "container runtime" started is Celery itself, PID 1's place.
    cmdline = Path(f"/proc/{worker.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"celery" in cmdline[1] and b"-c" not in cmdline[:2]
    short = lab.send("send_receipt", 3, queue=QUEUE)
    lab.wait_active(worker.name)
    pod_log = tmp_path / "pid1-stdout.log"
    hook_line = templated(hook, {"/proc/1/fd/1": str(pod_log)})

    pre_stop = subprocess.run([hook_shell, hook_flag, hook_line], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=gate_timeout)  # fmt: skip

    assert pre_stop.returncode == 0, pod_log.read_text()
    assert f"project.tasks.send_receipt: 1 active on {worker.name}" in pod_log.read_text()
    assert "verdict: clear (exit 0)" in pod_log.read_text()
    assert lab.active_queues([worker.name, other]) == {worker.name: [], other: [lab.queue]}
    # The kubelet's SIGTERM to PID 1, with the rest of the grace period.
    stop_main_process(worker, signal.SIGTERM, within=pod["terminationGracePeriodSeconds"] - 60)
    assert worker.process.returncode == 0
    assert succeeded(worker.logs(), short)

    # The hook of a pod whose worker is gone already: --allow-no-workers lets it pass.
    gone = subprocess.run([hook_shell, hook_flag, hook_line], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert gone.returncode == 0, pod_log.read_text()


# -- GitHub Actions ------------------------------------------------------------------------

WORKFLOW = ".github/workflows/deploy-workers.yml"


def test_github_actions_recipe_lints_clean(tmp_path: Path) -> None:
    workflow = write(tmp_path / WORKFLOW, recipe_file("github-actions.md", WORKFLOW))

    found = lint("actionlint", "-no-color", "-shellcheck", tool("shellcheck"), workflow)

    assert found == ""
    lint("check-jsonschema", "--builtin-schema", "vendor.github-workflows", workflow)


def deploy_job(lab: Lab, tmp_path: Path, deploy: Any, **overrides: str) -> Job:
    """The recipe's job, ready to run here: its secrets are the test's broker and database;
    the stand-ins are for GitHub's actions, the project's install and its rollout."""
    ws = workspace(tmp_path)
    artifacts = tmp_path / "artifacts"

    def upload(step: Step, env: dict[str, str]) -> int:
        source = ws / step.spec["with"]["path"]
        assert step.spec["with"]["if-no-files-found"] == "warn"
        if source.exists():
            write(artifacts / step.spec["with"]["name"] / source.name, source.read_text())
        return 0

    def nothing(step: Step, env: dict[str, str]) -> int:
        return 0

    base = lab.env_for()
    for key in ("DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL", "DATABASE_URL"):
        del base[key]  # the workflow's env and secrets give them
    base["PATH"] = f"{VENV_BIN}:{base['PATH']}"  # setup-python's python (the demo's venv)
    return Job(
        yaml.safe_load(recipe_file("github-actions.md", WORKFLOW)),
        "deploy",
        workspace=ws,
        base_env=base,
        secrets={"CELERY_BROKER_URL": lab.broker_url, "DATABASE_URL": lab.database_url},
        stand_ins={
            "actions/checkout": nothing,  # the workspace holds the demo's manage.py
            "actions/setup-python": nothing,
            "Install": nothing,  # the demo is installed in this virtualenv
            "actions/upload-artifact": upload,
            "Deploy": deploy,
        },
        env_overrides=overrides,
    )


def outcomes(job: Job) -> dict[str, str]:
    return {step.name: step.outcome for step in job.steps}


def own_outcomes(job: Job) -> dict[str, str]:
    """The outcomes of the recipe's own steps (not checkout and setup-python)."""
    return {name: outcome for name, outcome in outcomes(job).items() if "@" not in name}


@pytest.mark.timeout(120)
def test_github_actions_recipe_clears_and_deploys(lab: Lab, tmp_path: Path) -> None:
    worker = lab.start_worker("w1")
    short = lab.send("send_receipt", 3)
    lab.wait_active(worker.name)
    restarted: list[Worker] = []

    def rollout(step: Step, env: dict[str, str]) -> int:  # stop the worker, start the new one
        stop_main_process(worker, signal.SIGTERM, within=60)
        restarted.append(lab.start_worker("w1"))
        return 0

    job = deploy_job(lab, tmp_path, rollout)
    job.run()

    assert outcomes(job) == {
        **{name: "stand-in: success" for name in outcomes(job) if "@" in name},  # actions
        "Install": "stand-in: success",
        "Deploy gate": "success",
        "Keep the gate's report": "stand-in: success",
        "Deploy": "stand-in: success",
        "Put the consumers back": "skipped",
    }, job.transcript
    gate = job.step("gate")
    run = GateRun.objects.get()
    assert gate.outputs == {
        "verdict": "clear",
        "exit_code": "0",
        "blockers": "0",
        "run_id": str(run.pk),
    }
    assert f"project.tasks.send_receipt: 1 active on {worker.name}" in gate.out  # it waited
    uploaded = tmp_path / "artifacts" / "deploy-gate-report" / "gate.json"
    assert valid_report(json.loads(uploaded.read_text()))["verdict"] == "clear"
    assert gate.summary.startswith(f"### ✅ Deploy gate: clear — exit 0, gate run #{run.pk}\n")
    assert f"**Workers drained (1):** `{worker.name}`" in gate.summary
    assert gate.annotations == []
    assert succeeded(worker.logs(), short)
    assert lab.active_queues([restarted[0].name]) == {worker.name: [lab.queue]}
    print("\n".join(job.transcript), "\n\n" + job.summary)  # the run, for `pytest -rP`


@pytest.mark.timeout(120)
def test_github_actions_recipe_puts_consumers_back_after_a_failed_deploy(
    lab: Lab, tmp_path: Path
) -> None:
    node = lab.start_worker("w1").name
    job = deploy_job(lab, tmp_path, lambda step, env: 1)  # the rollout fails

    job.run()

    assert own_outcomes(job) == {
        "Install": "stand-in: success",
        "Deploy gate": "success",
        "Keep the gate's report": "stand-in: success",
        "Deploy": "stand-in: failure",
        "Put the consumers back": "success",
    }, job.transcript
    assert job.failed
    run = GateRun.objects.get()
    resume = job.step("Put the consumers back")
    assert f"Restoring gate run #{run.pk} (clear," in resume.out
    assert "CI job https://github.com/example/project/actions/runs/1001" in resume.out
    assert resume.summary == (
        f"The deploy did not finish: the workers consume again (gate run #{run.pk}).\n"
    )
    assert lab.active_queues() == {node: [lab.queue]}
    assert lab.leases([node]) == {node: {}}
    run.refresh_from_db()
    assert run.restored_at is not None
    print("\n".join(job.transcript), "\n\n" + job.summary)


@pytest.mark.timeout(120)
def test_github_actions_recipe_when_the_gate_blocks_or_is_cancelled(
    lab: Lab, tmp_path: Path
) -> None:
    node = lab.start_worker("w1").name
    lab.send("generate_report", 60)
    lab.wait_active(node)
    job = deploy_job(lab, tmp_path, lambda step, env: pytest.fail("deployed"), GATE_TIMEOUT="3")

    job.run()

    assert own_outcomes(job) == {
        "Install": "stand-in: success",
        "Deploy gate": "failure",
        "Keep the gate's report": "stand-in: success",
        "Deploy": "skipped",
        "Put the consumers back": "skipped",
    }, job.transcript
    gate = job.step("gate")
    assert (gate.code, gate.outputs["verdict"], gate.outputs["blockers"]) == (1, "blocked", "1")
    (annotation,) = gate.annotations  # the blocker table's row, as every output draws it
    assert re.fullmatch(
        r"::error title=Deploy gate blocker::project\.tasks\.generate_report: 1 active on "
        r"\S+, oldest running \d+ s \(blocking\): acknowledged when it started: stopping the "
        r"worker now loses it",
        annotation,
    ), annotation
    assert "| `project.tasks.generate_report` | 1 | 1 active |" in gate.summary
    uploaded = tmp_path / "artifacts" / "deploy-gate-report" / "gate.json"
    assert valid_report(json.loads(uploaded.read_text()))["verdict"] == "blocked"
    assert lab.active_queues() == {node: [lab.queue]}  # the gate restored them itself
    print("\n".join(job.transcript), "\n\n" + job.summary)

    # A cancelled run: the runner's SIGINT goes to the step's entry process, the gate (exec).
    cancelled = deploy_job(lab, tmp_path / "cancelled", None, GATE_TIMEOUT="60")
    entry = cancelled.popen("gate")
    try:
        wait_for(lambda: lab.active_queues() == {node: []})
        entry.send_signal(signal.SIGINT)
        result = finish(entry, timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(entry.pid, signal.SIGINT)  # a gate left running restores on SIGINT

    assert result.code == 130, result.text
    assert lab.active_queues() == {node: [lab.queue]}


# -- GitLab CI -----------------------------------------------------------------------------


def gitlab_shell(lines: list[str], env: dict[str, str], cwd: Path) -> Any:
    """One script section as the runner's bash runs it: all lines in one shell, -eo pipefail."""
    script = "set -eo pipefail\n" + "\n".join(lines) + "\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line)


@pytest.mark.timeout(120)
def test_gitlab_ci_recipe(lab: Lab, tmp_path: Path) -> None:
    text = recipe_file("gitlab-ci.md", ".gitlab-ci.yml")
    pipeline = write(tmp_path / ".gitlab-ci.yml", text)
    lint("check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", "--data-transform",
         "gitlab-ci", pipeline)  # fmt: skip
    ci = yaml.safe_load(text)
    for name in ("deploy-gate", "resume-consumers"):
        sections = [*ci[name]["script"], *ci[name].get("after_script", [])]
        lint("shellcheck", "--shell=bash", write(tmp_path / f"{name}.sh", "\n".join(sections)))
    gate_job, resume_job = ci["deploy-gate"], ci["resume-consumers"]
    assert gate_job["artifacts"]["when"] == "always"
    assert gate_job["artifacts"]["reports"]["dotenv"] == "gate.env"
    assert resume_job["rules"][0]["when"] == "on_failure"

    ws = workspace(tmp_path)
    env = lab.env_for()
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"  # the image's python
    job_url = "https://gitlab.example.com/example/project/-/jobs/42"
    # The runner's variables, the file's, and the project's CI/CD variables (the lab's URLs).
    env.update(ci["variables"], CI="true", GITLAB_CI="true", CI_JOB_URL=job_url)
    node = lab.start_worker("w1").name

    gate = gitlab_shell(gate_job["script"], env, ws)
    after = gitlab_shell(gate_job["after_script"], env, ws)

    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert after.returncode == 0, after.stdout + after.stderr
    run = GateRun.objects.get()
    variables = dotenv(ws / "gate.env")
    assert variables == {
        "GATE_VERDICT": "clear",
        "GATE_EXIT_CODE": "0",
        "GATE_RUN_ID": str(run.pk),
        "GATE_BLOCKERS": "0",
    }
    assert lab.active_queues() == {node: []}
    # The deploy job fails (a stand-in): resume-consumers runs, with the dotenv variables.
    resumed = gitlab_shell(resume_job["script"], {**env, **variables}, ws)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Restoring gate run #{run.pk} (clear," in resumed.stdout
    assert f"CI job {job_url}" in resumed.stdout  # the gate recorded which job drained them
    assert lab.active_queues() == {node: [lab.queue]}
    assert lab.leases([node]) == {node: {}}

    # After any other verdict the gate restored the consumers itself: nothing to do.
    blocked = gitlab_shell(resume_job["script"], {**env, "GATE_VERDICT": "blocked"}, ws)
    assert blocked.returncode == 0
    assert blocked.stdout == (
        "Gate verdict: blocked. The gate put the consumers back itself: nothing to do.\n"
    )
    # A gate that fails still leaves its variables: no worker answers, though one was drained.
    lab.workers[0].kill()
    failed = gitlab_shell(gate_job["script"], env, ws)
    gitlab_shell(gate_job["after_script"], env, ws)
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert dotenv(ws / "gate.env") == {
        "GATE_VERDICT": "error",
        "GATE_EXIT_CODE": "2",
        "GATE_RUN_ID": "",
        "GATE_BLOCKERS": "0",
    }
