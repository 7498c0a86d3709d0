"""A small lab of real parts: a broker, real ``celery worker`` processes, gate subprocesses.

Each test gets its own queue names (and, for the filesystem broker, its own folder), and
every worker it starts is stopped at teardown, so tests do not see each other's tasks.
Gates run as ``manage.py`` subprocesses: real exit codes, real signals, real output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery
from jsonschema import Draft202012Validator
from kombu import Connection
from kombu.utils.url import maybe_sanitize_url

from project.settings import FILESYSTEM_TRANSPORT, filesystem_transport_options
from tests.support.run import vhost_url

ROOT = Path(__file__).resolve().parents[2]
# A gate drains every worker of its broker's vhost (or Redis database), so each process of each
# run gets one of its own (run.py): the vhost is named here (conftest.py creates it), the Redis
# database claimed at the session's start (conftest.py puts it in BROKERS).
RABBITMQ_URL = vhost_url(
    os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/taskmaster")
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")  # a database: claimed
BROKERS = {"rabbitmq": RABBITMQ_URL, "redis": REDIS_URL, "filesystem": "filesystem://"}


# The published schema of prepare_deploy's report: every report a test reads is checked
# against it, and must carry every key it requires.
REPORT_SCHEMA = json.loads((ROOT / "docs" / "report.schema.json").read_text())
REPORT_KEYS = set(REPORT_SCHEMA["required"])
report_validator = Draft202012Validator(
    REPORT_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER
)


def valid_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report, after checking it against the published schema (raises if it is not)."""
    report_validator.validate(report)
    return report


@dataclass
class Result:
    out: str
    err: str
    code: int

    @property
    def text(self) -> str:
        return self.out + self.err

    def report(self) -> dict[str, Any]:
        """The one JSON object on stdout, with every key of the contract and its exit code."""
        return contract_report(self.out, self.code)


def contract_report(text: str, code: int) -> dict[str, Any]:
    """A report (``--json``'s stdout, ``--report``'s file): one JSON object, nothing else, with
    every key of the contract, valid against the schema, and this exit code."""
    report: dict[str, Any] = json.loads(text)
    assert set(report) == REPORT_KEYS, sorted(set(report) ^ REPORT_KEYS)
    valid_report(report)
    assert report["exit_code"] == code
    return report


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class Lab:
    broker_url: str
    database_url: str
    var_dir: Path
    settings: str = "project.settings"  # DJANGO_SETTINGS_MODULE of workers and gates
    workers: list[Worker] = field(default_factory=list)
    gates: list[subprocess.Popen[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tag = uuid.uuid4().hex[:8]
        self.queue = f"q-{self.tag}"
        self.app = Celery("lab", broker=self.broker_url, set_as_current=False)
        if self.broker_url.startswith("filesystem://"):
            self.app.conf.broker_transport = FILESYSTEM_TRANSPORT
            self.app.conf.broker_transport_options = filesystem_transport_options(self.var_dir)

    @property
    def broker_label(self) -> str:
        """The broker URL as the gate shows it: normalized, password masked."""
        return str(maybe_sanitize_url(Connection(self.broker_url).as_uri(include_password=True)))

    @property
    def env(self) -> dict[str, str]:
        return self.env_for()

    def env_for(
        self,
        *,
        settings: str | None = None,
        broker_url: str | None = None,
        extra: dict[str, str] | None = None,
        without_django: bool = False,
    ) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CELERY_", "DJANGO_", "PYTEST_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE=settings or self.settings,
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=broker_url or self.broker_url,
            LAB_QUEUE=self.queue,
            TASKMASTER_VAR_DIR=str(self.var_dir),
            PYTHONUNBUFFERED="1",
        )
        env.update(extra or {})
        if without_django:
            del env["DJANGO_SETTINGS_MODULE"]
        return env

    # -- workers ---------------------------------------------------------------------

    def start_worker(
        self,
        name: str = "w1",
        *,
        queues: list[str] | None = None,
        concurrency: int = 2,
        pool: str = "prefork",
        prefetch: int = 4,
        settings: str | None = None,
        app: str = "project",
        django: bool = True,
        wait: bool = True,
        cwd: Path = ROOT,
        old_image: bool = False,
    ) -> Worker:
        """Start ``celery worker``; ``queues=[]`` consumes the settings' task_queues (no -Q).
        ``old_image``: as in an image without Taskmaster installed (``old_image.py``)."""
        node = f"{name}-{self.tag}@lab"
        log = self.var_dir / f"{name}-{len(self.workers)}.log"
        queues = [self.queue] if queues is None else queues
        if old_image:
            settings = "tests.support.old_worker_settings"
        module = "tests.support.old_image" if old_image else "celery"
        args = [
            sys.executable, "-m", module, "-A", app, "worker",
            "-n", node, "-c", str(concurrency), "-P", pool,
            "--prefetch-multiplier", str(prefetch),
            "--without-mingle", "--without-gossip", "-l", "info",
        ]  # fmt: skip
        if queues:
            args += ["-Q", ",".join(queues)]
        with log.open("wb") as out:
            process = subprocess.Popen(
                args,
                cwd=cwd,
                env=self.env_for(settings=settings, without_django=not django),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so teardown kills the pool too
            )
        worker = Worker(node, process, log)
        self.workers.append(worker)
        if wait:
            self.wait_ready(worker)
        return worker

    def start_busy_worker(self, name: str = "w1", *, seconds: float = 120, **worker: Any) -> Worker:
        """A worker running a blocking task (``generate_report``, sent to its first queue): a
        gate keeps it drained until the task ends or the gate's deadline."""
        started = self.start_worker(name, **worker)
        self.send("generate_report", seconds, queue=(worker.get("queues") or [self.queue])[0])
        self.wait_active(started.name)
        return started

    def wait_ready(self, worker: Worker, timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited:\n{worker.logs()}")
            if " ready." in worker.logs() and self.ping(worker.name):
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker {worker.name} not ready:\n{worker.logs()}")

    # -- talking to the cluster from the test ---------------------------------------

    def ping(self, node: str) -> bool:
        return bool(self.app.control.ping(destination=[node], timeout=1.0))

    def active_queues(self, nodes: list[str] | None = None) -> dict[str, list[str]]:
        nodes = nodes or [w.name for w in self.workers if w.process.poll() is None]
        replies = self.app.control.inspect(destination=nodes, timeout=2.0).active_queues() or {}
        return {node: sorted(q["name"] for q in queues) for node, queues in replies.items()}

    def leases(self, nodes: list[str]) -> dict[str, dict[str, Any]]:
        """The drain lease each worker holds ({} for none), from taskmaster.tasks."""
        replies = self.app.control.broadcast(
            "taskmaster_lease_status", destination=nodes, reply=True, timeout=2.0, limit=len(nodes)
        )
        return {node: reply for answer in replies for node, reply in answer.items()}

    def active_tasks(self, node: str) -> list[dict[str, Any]]:
        replies = self.app.control.inspect(destination=[node], timeout=2.0).active() or {}
        return list(replies.get(node, []))

    def send(
        self,
        task: str,
        *args: Any,
        queue: str | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> str:
        result = self.app.send_task(
            f"project.tasks.{task}", args=args, kwargs=kwargs, queue=queue or self.queue, **options
        )
        return str(result.id)

    def wait_active(self, node: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = self.active_tasks(node)
            if len(tasks) >= count:
                return tasks
            time.sleep(0.2)
        raise TimeoutError(f"{node} did not start {count} task(s)")

    # -- the gate as a user runs it --------------------------------------------------

    def manage(
        self,
        *args: str,
        timeout: float = 120,
        broker_url: str | None = None,
        settings: str | None = None,
        env: dict[str, str] | None = None,
        cwd: Path = ROOT,
        module: str | None = None,
    ) -> Result:
        """``manage.py`` with these arguments, as a process; ``module``: a module run as
        ``python -m`` in its place (one that injects a fault, then runs Django's command)."""
        entry = ["-m", module] if module else ["manage.py"]
        proc = subprocess.run(
            [sys.executable, *entry, *args],
            cwd=cwd,
            env=self.env_for(settings=settings, broker_url=broker_url, extra=env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.stdout, proc.stderr, proc.returncode)

    def start_gate(
        self,
        *args: str,
        broker_url: str | None = None,
        env: dict[str, str] | None = None,
        **popen: Any,
    ) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "prepare_deploy", *args],
            cwd=ROOT,
            env=self.env_for(broker_url=broker_url, extra=env),
            **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, **popen},
        )
        self.gates.append(proc)
        return proc

    def close(self) -> None:
        for gate in self.gates:
            if gate.poll() is None:
                gate.kill()
                gate.wait()
        for worker in self.workers:
            worker.kill()
        self.app.close()


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> Result:
    out, err = proc.communicate(timeout=timeout)
    return Result(out, err, proc.returncode)


def wait_for(predicate: Any, timeout: float = 20, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"condition not met in {timeout} s")


def drained(lab: Lab, *nodes: str) -> bool:
    """Whether each of these workers answers and consumes nothing."""
    queues = lab.active_queues(list(nodes))
    return len(queues) == len(nodes) and not any(queues.values())


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 30) -> str:
    """Read a gate's plain output (its stdout) until a line contains ``marker``; what was read."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"no {marker!r} in gate output:\n{''.join(seen)}")
