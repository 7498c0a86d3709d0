"""A fleet of simulated workers: M processes of ``simulator.py`` on one broker, started until
every worker answers, and stopped cleanly (each sends ``worker-offline`` and closes its
connections: its control queue and its consumers go with them)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PER_PROCESS = 125  # simulated workers per OS process: 8 processes for 1,000
# RabbitMQ refuses sockets past its limit (832 with the usual 1024 file descriptors): past this
# many workers, they share AMQP connections (each keeps its own channels and consumers).
AMQP_CONNECTIONS = 200
NAME = "sim-{n:04d}@fleet"  # the default node names: sim-0000@fleet, sim-0001@fleet, …
READY = "fleet-ready"  # the line a process prints once every one of its workers consumes


def node_names(first: int, count: int, pattern: str = NAME) -> list[str]:
    return [pattern.format(n=n) for n in range(first, first + count)]


@dataclass
class Fleet:
    """``count`` simulated workers on the broker the environment's app uses (``env``: the
    environment a real worker would get, e.g. ``Lab.env_for()``)."""

    count: int
    env: dict[str, str]
    queues: list[str] = field(default_factory=list)  # as -Q; empty: the app's task_queues
    name: str = NAME
    per_process: int = PER_PROCESS
    per_connection: int | None = None  # None: 1, or shared past AMQP_CONNECTIONS on RabbitMQ
    concurrency: int = 1
    heartbeat: bool = True
    taskmaster: bool = True  # False: workers of an image without Taskmaster (no drain lease)
    app: str = "project.celery.app"
    loglevel: str = "WARNING"  # the processes' (their logs are in log_dir)
    log_dir: Path | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return node_names(0, self.count, self.name)

    def sharing(self) -> int:
        if self.per_connection is not None:
            return self.per_connection
        broker = self.env.get("CELERY_BROKER_URL", "")
        if broker.startswith(("amqp", "pyamqp")) and self.count > AMQP_CONNECTIONS:
            return math.ceil(self.count / AMQP_CONNECTIONS)
        return 1

    def start(self, timeout: float = 180) -> Fleet:
        """Start every process; return once each has said it consumes and every worker has
        answered a ``ping`` (raises ``TimeoutError`` or ``RuntimeError`` otherwise)."""
        log_dir = self.log_dir or Path(tempfile.mkdtemp(prefix="fleet-"))
        share = self.sharing()
        for first in range(0, self.count, self.per_process):
            count = min(self.per_process, self.count - first)
            log = log_dir / f"fleet-{first:04d}.log"
            args = [
                sys.executable, "-m", "benchmarks.fleet.simulator",
                "--app", self.app, "--first", str(first), "--count", str(count),
                "--name", self.name, "--queues", ",".join(self.queues),
                "--concurrency", str(self.concurrency), "--per-connection", str(share),
                "--loglevel", self.loglevel,
            ]  # fmt: skip
            if not self.heartbeat:
                args.append("--without-heartbeat")
            if not self.taskmaster:
                args.append("--without-taskmaster")
            with log.open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        args,
                        cwd=ROOT,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            self.logs.append(log)
        deadline = time.monotonic() + timeout
        try:
            self._wait_ready(deadline)
            self._wait_answers(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, deadline: float) -> None:
        waiting = set(range(len(self.processes)))
        while waiting:
            for index in sorted(waiting):
                process, log = self.processes[index], self.logs[index]
                if READY in log.read_text(errors="replace"):
                    waiting.discard(index)
                elif process.poll() is not None:
                    raise RuntimeError(f"a fleet process exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} fleet process(es) not consuming in time")
            time.sleep(0.1)

    def _wait_answers(self, deadline: float) -> None:
        """Every worker answers a ping addressed to it (as a gate's destination= reaches it)."""
        from celery import Celery

        app = Celery("fleet-check", broker=self.env["CELERY_BROKER_URL"], set_as_current=False)
        missing = set(self.names)
        try:
            while missing and time.monotonic() < deadline:
                replies = app.control.broadcast(
                    "ping", destination=sorted(missing), reply=True, timeout=2.0
                )
                missing -= {host for answer in replies or [] for host in answer}
        finally:
            app.close()
        if missing:
            raise TimeoutError(f"{len(missing)} simulated worker(s) do not answer")

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.poll() is None]

    def cpu_seconds(self) -> float:
        """CPU time the fleet's processes have used (user + system), from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        return total

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM each process (a warm stop), then SIGKILL what is left."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def __enter__(self) -> Fleet:
        return self.start() if not self.processes else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def fleet(count: int, env: dict[str, str], **options: Any) -> Iterator[Fleet]:
    """A started fleet, stopped at the end."""
    started = Fleet(count, env, **options).start()
    try:
        yield started
    finally:
        started.stop()
