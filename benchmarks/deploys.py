"""Benchmark: tasks lost per deploy, the usual ways against the gate.

    make benchmark-deploys [ARGS="--deploys 20 --broker both --seed 20261221"]
    make benchmark-deploys ARGS=--quick            # a taste: 3 deploys each, everything shorter

Other options: ``--scale F`` (every duration times F, the rate divided by it), ``--sequential``,
``--strategies naive,gate`` (a subset), ``--logs DIR`` (keep the workers' and supervisord's
logs, the ledger and the tasks sent, as CSV), ``--out``, ``--plot``.

On each broker (the machine's RabbitMQ and Redis, each in a vhost / database of its own, with a
PostgreSQL database of its own for Django and the ledger), two prefork workers run under
supervisord, with the supervisor recipe's program section (docs/deploy/supervisor.md). A
producer sends a steady, seeded mix of tasks (benchmarks/deploy_tasks.py): interruptible
(acks_late), short (early ack, hard time limit) and blocking (early ack, no limit, some longer
than the stop's grace). Each task writes its start and its end to a ledger. Then the fleet is
deployed ``--deploys`` times with each strategy, in a seeded order on the same fleet and load:

- ``naive``: ``supervisorctl stop all`` (SIGTERM, a warm shutdown, SIGKILL after
  ``stopwaitsecs``), then ``supervisorctl start``;
- ``look-first``: ``celery -A project inspect active`` every few seconds until it shows nothing
  running (at most the gate's timeout, then deploy anyway: "forced"), then as naive;
- ``kubernetes``: a Deployment's rolling update (``maxSurge: 1``, ``maxUnavailable: 0``, no
  preStop hook): a new worker under a new name starts, once it consumes an old one gets
  SIGTERM and, after the grace period, SIGKILL; then the next;
- ``gate``: ``manage.py prepare_deploy --timeout T --interval I --json``; on exit 0 as naive
  (the workers are drained), on exit 1 no deploy ("skipped": the gate restored the consumers).

At the end the producer stops and the workers drain the queue, so every task sent is accounted
for: ended once, lost (an early-ack task that started and never ended), run twice, or never
started. Each loss and each second run is put on the deploy that stopped its worker; each task
delayed on the deploy under way while it waited. Prints a table, writes
``benchmarks/deploys.json`` and the plot ``docs/img/deploys.png``. Asserts nothing.

The brokers run at the same time, each with its own fleet, in a process of its own
(``--sequential``: one after the other, twice as long, no CPU shared between them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402
from tests.support.supervisor import SUPERVISORD_CONF  # noqa: E402

BIN = Path(sys.executable).parent  # celery, supervisord, supervisorctl of this virtualenv
SETTINGS = "benchmarks.deploy_settings"  # workers, gates and Celery's CLI alike
APP = "project"  # celery -A project, as the recipe runs it
TASKS = "benchmarks.deploy_tasks"
QUEUE = "celery"  # the default queue: the recipe's workers consume it
POSTGRES = "postgres://postgres@127.0.0.1:5432"
BROKER_BASES = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672",
    "redis": "redis://127.0.0.1:6379/0",  # a database is claimed, as the tests do
}
STRATEGIES = ("naive", "look-first", "kubernetes", "gate")
EARLY_ACK = ("short", "blocking")
COLORS = ("blue", "green")  # two program sections: a rolling update starts the other one

DEFINITIONS = {
    "lost": "an early-ack task (short or blocking) with a start and no end in the ledger after "
    "the final drain: its worker was killed while it ran; put on the deploy that stopped "
    "that worker first after the start",
    "ran_twice": "a late-ack (interruptible) task with two starts or more: the broker delivered "
    "it again after its worker was killed mid-run; put on the deploy that stopped the worker "
    "of its first start",
    "early_ack_twice": "an early-ack task with two starts (should not happen: Redis gives a "
    "message back when its visibility timeout passes before the ack)",
    "deploy_s": "from 'deploy requested' (the first look, the gate's start, the stop or the "
    "first new worker's start) to 'new workers consuming' (each new worker answers "
    "active_queues and lists the queue); deploys done only",
    "delayed": "a task whose wait in the queue (first start minus sent) exceeded the no-deploy "
    "baseline (the 95th percentile of the warm-up's waits) by more than delay_margin; put "
    "on the first deploy under way while it waited (from the request until the new workers "
    "consumed and the old ones were gone), else on the last deploy requested before it started",
    "skipped": "the gate said blocked (exit 1): no deploy, the consumers restored",
    "forced": "look-first: inspect still showed tasks running at the cap, deployed anyway",
    "sigkilled": "worker processes supervisord had to SIGKILL after stopwaitsecs (not always a "
    "loss: a worker whose last task ends just before the grace runs out may be killed in its "
    "own shutdown, which takes about a second more)",
}


# -- parameters ------------------------------------------------------------------------


@dataclass
class Params:
    """Every knob of a run, already scaled (``scale`` multiplies each duration and divides the
    rate, so the load keeps its shape; a worker's start-up does not scale)."""

    deploys: int
    seed: int
    scale: float
    brokers: list[str]
    parallel: bool
    strategies: list[str]
    logs: str | None  # where to keep the workers' and supervisord's logs
    workers: int = 2
    concurrency: int = 2
    prefetch_multiplier: int = 1  # the demo project's setting, which the workers read
    rate: float = 0.3  # tasks sent per second
    mix: dict[str, float] = field(
        default_factory=lambda: {"interruptible": 0.50, "short": 0.46, "blocking": 0.04}
    )
    seconds: dict[str, list[float]] = field(
        default_factory=lambda: {
            "interruptible": [1.0, 4.0],
            "short": [1.0, 3.0],
            "blocking": [10.0, 90.0],  # about 3 in 4 outlast the grace
        }
    )
    grace: float = 30.0  # stopwaitsecs, terminationGracePeriodSeconds
    startsecs: int = 5  # the recipe's; not scaled
    gate_timeout: float = 45.0  # and look-first's cap
    gate_interval: float = 5.0
    look_every: float = 2.0  # between two `celery inspect active` calls; not scaled
    settle: list[float] = field(default_factory=lambda: [1.5, 4.5])  # before each deploy
    warmup: float = 90.0  # no deploy: the baseline of queue waits
    delay_margin: float = 5.0

    def scaled(self) -> Params:
        f = self.scale
        self.rate = round(self.rate / f, 3)
        self.seconds = {k: [round(s * f, 2) for s in v] for k, v in self.seconds.items()}
        self.grace = round(self.grace * f)
        self.gate_timeout = round(self.gate_timeout * f)
        self.gate_interval = max(1.0, round(self.gate_interval * f, 1))
        self.settle = [round(s * f, 1) for s in self.settle]
        self.warmup = round(self.warmup * f)
        self.delay_margin = round(self.delay_margin * f, 1)
        return self

    @property
    def visibility_timeout(self) -> int:
        """Redis's: above the longest a prefetched early-ack message may wait to start (behind
        a blocking task), so Redis does not deliver one twice (``early_ack_twice`` would show
        it); and what a message held by a SIGKILLed worker waits before it comes back."""
        return int(self.seconds["blocking"][1] + 60)


def make_params(args: argparse.Namespace) -> Params:
    quick = args.quick
    deploys = args.deploys if args.deploys is not None else (3 if quick else 20)
    scale = args.scale if args.scale is not None else (1 / 3 if quick else 1.0)
    brokers = list(BROKER_BASES) if args.broker == "both" else [args.broker]
    strategies = args.strategies.split(",")
    if not strategies or set(strategies) - set(STRATEGIES):
        raise SystemExit(f"--strategies: a comma-separated subset of {','.join(STRATEGIES)}")
    return Params(
        deploys=deploys,
        seed=args.seed,
        scale=round(scale, 3),
        brokers=brokers,
        parallel=not args.sequential,
        strategies=strategies,
        logs=str(args.logs) if args.logs else None,
    ).scaled()


# -- the machine -----------------------------------------------------------------------


def versions() -> dict[str, Any]:
    """What this benchmark adds to the machine's description: supervisord and PostgreSQL."""
    import supervisor.options

    postgres = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"],
        capture_output=True,
        text=True,
    ).stdout
    return {
        "supervisor": supervisor.options.VERSION,
        "postgresql": postgres.strip().split()[0] if postgres.strip() else "?",
    }


# -- the load --------------------------------------------------------------------------


@dataclass
class Job:
    id: str
    kind: str
    seconds: float
    sent: float = 0.0  # time.time() just before it was sent


def jobs(params: Params) -> Iterator[Job]:
    """The seeded sequence of tasks: the same kinds, durations and ids on every broker."""
    rng = random.Random(params.seed)
    kinds = list(params.mix)
    weights = [params.mix[kind] for kind in kinds]
    while True:
        kind = rng.choices(kinds, weights)[0]
        low, high = params.seconds[kind]
        task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        yield Job(task_id, kind, round(rng.uniform(low, high), 2))


class Producer(threading.Thread):
    """Sends the seeded tasks at a fixed rate until stopped, whatever the workers do: deploys
    do not stop a site from sending tasks. A connection of its own (kombu's are not shared
    between threads)."""

    def __init__(self, broker_url: str, params: Params) -> None:
        super().__init__(name="producer", daemon=True)
        self.broker_url, self.params = broker_url, params
        self.sent: list[Job] = []
        self.error: str | None = None
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)

    def run(self) -> None:
        from celery import Celery

        app = Celery("deploys-producer", broker=self.broker_url, set_as_current=False)
        every = 1 / self.params.rate
        began = time.monotonic()
        try:
            with app.producer_or_acquire() as producer:
                for n, job in enumerate(jobs(self.params)):
                    # On a fixed schedule: a slow send is caught up, not shifted.
                    if self._stop_event.wait(max(0.0, began + n * every - time.monotonic())):
                        break
                    job.sent = time.time()
                    app.send_task(
                        f"{TASKS}.{job.kind}",
                        args=(job.seconds,),
                        task_id=job.id,
                        queue=QUEUE,
                        producer=producer,
                    )
                    self.sent.append(job)
        except Exception as error:  # the run goes on without load; the report says so
            self.error = repr(error)
        finally:
            app.close()


# -- room on the shared services -------------------------------------------------------


@contextmanager
def broker_room(broker: str, tag: str) -> Iterator[str]:
    """A RabbitMQ vhost or a Redis database of the run's own: a gate drains every worker of
    its vhost (database), so nobody else's may be there. Given back at the end."""
    from tests.support.run import claim_redis_db, create_vhost, delete_vhost, give_back

    if broker == "rabbitmq":
        url = f"{BROKER_BASES['rabbitmq']}/taskmaster_deploys_{tag}"
        create_vhost(url)
        try:
            yield url
        finally:
            delete_vhost(url)
        return
    import redis

    url = claim_redis_db(BROKER_BASES["redis"], "deploys benchmark")
    client = redis.Redis.from_url(url)
    client.flushdb()  # claimed: whatever an earlier run left there is nobody's
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
        give_back()


@contextmanager
def database(name: str) -> Iterator[str]:
    """A PostgreSQL database of the run's own (Django's tables and the ledger), dropped at
    the end."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"{POSTGRES}/{name}"
    finally:
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        for attempt in range(10):  # a server restarting (crash recovery) refuses for a while
            try:
                with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
                    admin.execute(drop)
                break
            except psycopg.OperationalError:
                if attempt == 9:
                    raise
                time.sleep(3)


def environment(
    broker_url: str, database_url: str, var_dir: Path, params: Params
) -> dict[str, str]:
    """The environment of supervisord (so of the workers), the gates and Celery's CLI."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "DJANGO_", "PYTEST_", "DEPLOYS_", "TASKMASTER_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        TASKMASTER_VAR_DIR=str(var_dir),
        DEPLOYS_LEDGER_URL=database_url,
        DEPLOYS_VISIBILITY_TIMEOUT=str(params.visibility_timeout),
        PYTHONPATH=str(ROOT),  # `benchmarks.deploy_tasks` for workers started by supervisord
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    import psycopg

    from benchmarks.deploy_tasks import LEDGER_TABLE

    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0", "--skip-checks"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    with psycopg.connect(env["DEPLOYS_LEDGER_URL"], autocommit=True) as conn:
        conn.execute(LEDGER_TABLE)


# -- the fleet under supervisord -------------------------------------------------------

# The supervisor recipe's program section (docs/deploy/supervisor.md), twice: "blue" runs,
# "green" is where a rolling update starts new workers under new names, as new pods get.
PROGRAM = """
[program:{color}]
command={bin}/celery -A {app} worker -n %(program_name)s%(process_num)d-{tag}@%%h -c {concurrency} --loglevel INFO
process_name=%(program_name)s-%(process_num)d
numprocs={workers}
directory={root}
autostart={autostart}
autorestart=true
startsecs={startsecs}
stopsignal=TERM
stopasgroup=false
stopwaitsecs={grace}
killasgroup=true
stdout_logfile={dir}/%(program_name)s-%(process_num)d.log
redirect_stderr=true
"""  # noqa: E501


class Background(threading.Thread):
    """A command run beside the deploy (``supervisorctl stop`` of an old worker while the
    rolling update goes on), with the time it ended."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.args, self.env = args, env
        self.ended: float | None = None
        self.result: subprocess.CompletedProcess[str] | None = None
        self.start()

    def run(self) -> None:
        self.result = subprocess.run(self.args, env=self.env, capture_output=True, text=True)
        self.ended = time.time()

    def wait(self) -> float:
        self.join()
        assert self.ended is not None
        return self.ended


class Fleet:
    """supervisord with the workers, and what the deploys ask of it."""

    def __init__(self, directory: Path, env: dict[str, str], params: Params, tag: str) -> None:
        from celery import Celery

        self.dir, self.env, self.params, self.tag = directory, env, params, tag
        self.conf = directory / "supervisord.conf"
        self.color = COLORS[0]
        self.host = socket.gethostname()
        self.control = Celery(
            "deploys-control", broker=env["CELERY_BROKER_URL"], set_as_current=False
        )
        self.daemon: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()  # every worker process group leader seen: killed at the end
        self.starting: list[Background] = []

    # -- supervisord --

    def start(self) -> None:
        text = SUPERVISORD_CONF.format(dir=self.dir)
        for color in COLORS:
            text += PROGRAM.format(
                color=color,
                autostart="true" if color == self.color else "false",
                bin=BIN,
                app=APP,
                tag=self.tag,
                concurrency=self.params.concurrency,
                workers=self.params.workers,
                root=ROOT,
                startsecs=self.params.startsecs,
                grace=self.params.grace,
                dir=self.dir,
            )
        self.conf.write_text(text)
        self.daemon = subprocess.Popen(
            [str(BIN / "supervisord"), "-c", str(self.conf)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C is the benchmark's to handle, not supervisord's
        )
        self.wait_consuming(self.nodes(), timeout=120)
        self.remember_pids()

    def ctl(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.ctl_args(*args), env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def ctl_args(self, *args: str) -> list[str]:
        return [str(BIN / "supervisorctl"), "-c", str(self.conf), *args]

    def background(self, *args: str) -> Background:
        return Background(self.ctl_args(*args), self.env)

    def start_programs(self, namespec: str) -> None:
        """``supervisorctl start``, not waited for: it returns ``startsecs`` after the spawn,
        and the deploy is done when the workers consume (often sooner)."""
        self.starting.append(self.background("start", namespec))

    def wait_started(self) -> None:
        """The starts under way have returned (before the next deploy touches the fleet)."""
        while self.starting:
            self.starting.pop().join()
        self.remember_pids()

    def remember_pids(self) -> None:
        with contextlib.suppress(Exception):
            out = self.ctl("pid", "all", timeout=30).stdout
            self.pids |= {int(word) for word in out.split() if word.isdigit() and word != "0"}

    def sigkills(self) -> int:
        """How many worker processes supervisord has SIGKILLed so far (its log says so)."""
        log = self.dir / "supervisord.log"
        return (
            log.read_text(errors="replace").count("(terminated by SIGKILL)") if log.exists() else 0
        )

    def close(self) -> None:
        """Everything this fleet started, gone: the workers (their whole process groups, pool
        processes included) and supervisord. No warm shutdown: the run is over.

        Only processes known to be this fleet's workers are touched: supervisord's children
        and the pids supervisorctl reported, each checked to be a worker of this run (our
        celery, our node names) leading its own process group, as supervisord starts them.
        Nothing is picked by name alone: a database backend serving this run has the run's
        tag in its process title too."""
        self.remember_pids()
        if self.daemon is not None:
            self.pids |= children_of(self.daemon.pid)
            if self.daemon.poll() is None:
                self.daemon.kill()  # first, so it restarts nothing (autorestart=true)
                self.daemon.wait()
        for pid in self.pids:
            if self.is_worker(pid):
                with contextlib.suppress(OSError):  # gone meanwhile
                    os.killpg(pid, signal.SIGKILL)
        for start in self.starting:
            start.join(timeout=10)
        self.control.close()

    def is_worker(self, pid: int) -> bool:
        """A worker main process of this fleet, leading its own process group."""
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            leads = os.getpgid(pid) == pid
        except OSError:
            return False
        celery = str(BIN / "celery").encode()
        node = [a for a in argv if a.endswith(f"-{self.tag}@%h".encode())]
        return leads and celery in argv and bool(node)

    # -- the workers --

    def nodes(self, color: str | None = None) -> list[str]:
        color = color or self.color
        return [f"{color}{n}-{self.tag}@{self.host}" for n in range(self.params.workers)]

    def consuming(self, nodes: list[str]) -> bool:
        replies = self.control.control.inspect(destination=nodes, timeout=1.0).active_queues()
        return all(
            any(q["name"] == QUEUE for q in (replies or {}).get(node) or []) for node in nodes
        )

    def wait_consuming(self, nodes: list[str], timeout: float = 120) -> float:
        """When every one of these workers answers and lists the queue among its consumers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.consuming(nodes):
                return time.time()
            time.sleep(0.25)
        raise TimeoutError(f"{nodes} not consuming {QUEUE} after {timeout:.0f} s")

    def active(self) -> dict[str, list[Any]] | None:
        nodes = self.nodes()
        replies = self.control.control.inspect(destination=nodes, timeout=2.0).active()
        return replies if replies and set(replies) >= set(nodes) else None

    def queued(self) -> int:
        """Messages waiting in the queue (not those the workers hold)."""
        with self.control.connection_for_write() as conn:
            try:
                return int(conn.default_channel.queue_declare(QUEUE, passive=True).message_count)
            except conn.channel_errors:  # Redis: an empty queue is no key, "not found"
                return 0


def children_of(parent: int) -> set[int]:
    """The processes whose parent is ``parent`` (from /proc: no name is trusted)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces.
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    found.add(int(entry.name))
    return found


@contextmanager
def supervised(directory: Path, env: dict[str, str], params: Params, tag: str) -> Iterator[Fleet]:
    fleet = Fleet(directory, env, params, tag)
    try:
        fleet.start()
        yield fleet
    finally:
        fleet.close()


# -- the deploys -----------------------------------------------------------------------


@dataclass
class Deploy:
    index: int  # in the run's sequence
    strategy: str
    round: int
    requested: float
    consuming: float | None = None  # new workers consuming (skipped: the gate's end)
    done: bool = False
    skipped: bool = False
    forced: bool = False
    looks: int = 0
    seen: list[int] = field(default_factory=list)  # look-first: tasks running, at each look
    gate_exit: int | None = None
    gate_verdict: str | None = None
    gate_blockers: int | None = None
    gate_s: float | None = None
    stop_s: float | None = None  # the stop alone (rolling update: the last old worker gone)
    stopped: dict[str, float] = field(default_factory=dict)  # node -> when its stop ended
    sigkilled: int = 0
    queued_at_request: int | None = None
    error: str | None = None

    @property
    def deploy_s(self) -> float | None:
        if self.done and self.consuming is not None:
            return round(self.consuming - self.requested, 3)
        return None


def stop_and_start(fleet: Fleet, deploy: Deploy) -> None:
    """The recipe's deploy: ``supervisorctl stop`` (it returns when every worker is gone, by
    a warm shutdown or a SIGKILL after stopwaitsecs), then ``supervisorctl start``."""
    old = fleet.nodes()
    began = time.time()
    stopping = fleet.ctl("stop", "all", timeout=fleet.params.grace + 120)
    ended = time.time()
    if stopping.returncode:
        raise RuntimeError(f"supervisorctl stop all: {stopping.stdout}{stopping.stderr}")
    deploy.stop_s = round(ended - began, 3)
    deploy.stopped = {node: ended for node in old}
    # The release itself (switch the code, migrate) would run here; it takes no time here.
    fleet.start_programs(f"{fleet.color}:*")
    deploy.consuming = fleet.wait_consuming(fleet.nodes())
    deploy.done = True


def naive(fleet: Fleet, deploy: Deploy) -> None:
    stop_and_start(fleet, deploy)


def look_first(fleet: Fleet, deploy: Deploy) -> None:
    """Look with Celery's CLI until nothing runs, then stop: tasks may start in between."""
    deadline = deploy.requested + fleet.params.gate_timeout
    while True:
        deploy.looks += 1
        running = tasks_running(fleet)
        deploy.seen.append(-1 if running is None else running)
        if running == 0:
            break
        if time.time() + fleet.params.look_every >= deadline:
            deploy.forced = True  # the operator's patience ran out: deploy anyway
            break
        time.sleep(fleet.params.look_every)
    stop_and_start(fleet, deploy)


def tasks_running(fleet: Fleet) -> int | None:
    """``celery -A project inspect active``: how many tasks run (None: a worker did not
    answer, which is no reason to deploy)."""
    proc = subprocess.run(
        [str(BIN / "celery"), "-A", APP, "inspect", "active", "--json"],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        replies = json.loads(proc.stdout)
    except ValueError:  # "No nodes replied within time constraint": look again
        return None
    if not set(replies) >= set(fleet.nodes()):
        return None
    return sum(len(tasks or []) for tasks in replies.values())


def kubernetes(fleet: Fleet, deploy: Deploy) -> None:
    """A rolling update with maxSurge 1, maxUnavailable 0 and no preStop hook: one new worker
    (a new pod, a new name), and when it consumes (its readiness), SIGTERM to one old worker,
    SIGKILL after the grace period (supervisord's stopwaitsecs and killasgroup: the kubelet
    kills the whole container); the next new worker does not wait for the old one to end."""
    old, new = fleet.color, COLORS[1 - COLORS.index(fleet.color)]
    stops: list[tuple[str, Background]] = []
    for n in range(fleet.params.workers):
        fleet.start_programs(f"{new}:{new}-{n}")
        deploy.consuming = fleet.wait_consuming([fleet.nodes(new)[n]])
        stops.append((fleet.nodes(old)[n], fleet.background("stop", f"{old}:{old}-{n}")))
    fleet.color = new
    deploy.done = True
    for node, stop in stops:  # the old pods' terminations end in the background
        deploy.stopped[node] = stop.wait()
    deploy.stop_s = round(max(deploy.stopped.values()) - deploy.requested, 3)


def gate(fleet: Fleet, deploy: Deploy) -> None:
    params = fleet.params
    proc = subprocess.run(
        [
            *(sys.executable, "manage.py", "prepare_deploy", "--json"),
            *("--timeout", str(params.gate_timeout), "--interval", str(params.gate_interval)),
        ],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=params.gate_timeout + 300,
    )
    deploy.gate_s = round(time.time() - deploy.requested, 3)
    deploy.gate_exit = proc.returncode
    with contextlib.suppress(ValueError):
        report = json.loads(proc.stdout)
        deploy.gate_verdict = report.get("verdict")
        deploy.gate_blockers = len(report.get("blockers") or [])
    if proc.returncode == 0:
        stop_and_start(fleet, deploy)  # drained: the stop loses nothing acknowledged early
    elif proc.returncode == 1:
        deploy.skipped = True  # blocked: the gate put the consumers back, no deploy
        deploy.consuming = time.time()
    else:
        raise RuntimeError(f"prepare_deploy exit {proc.returncode}: {proc.stderr[-2000:]}")


DEPLOYS = {"naive": naive, "look-first": look_first, "kubernetes": kubernetes, "gate": gate}


def one_deploy(fleet: Fleet, strategy: str, round_: int, index: int) -> Deploy:
    """One deploy; if it fails, the fleet is put back (workers running and consuming) and
    the failure recorded, so the other strategies' figures go on."""
    fleet.wait_started()
    kills = fleet.sigkills()
    deploy = Deploy(index, strategy, round_, requested=time.time())
    with contextlib.suppress(Exception):
        deploy.queued_at_request = fleet.queued()
    try:
        DEPLOYS[strategy](fleet, deploy)
    except Exception as error:
        deploy.error = f"{type(error).__name__}: {error}"[:3000]
        recover(fleet, deploy)
    deploy.sigkilled = fleet.sigkills() - kills
    return deploy


def recover(fleet: Fleet, deploy: Deploy) -> None:
    """After a failed deploy, start again from a known state: every worker stopped (what
    that loses is the failed deploy's), the current color started and consuming, and no
    gate run left open (``resume_consumers``), so the next deploys go on."""
    fleet.wait_started()
    fleet.ctl("stop", "all", timeout=fleet.params.grace + 120)
    ended = time.time()
    for node in fleet.nodes(COLORS[0]) + fleet.nodes(COLORS[1]):
        deploy.stopped.setdefault(node, ended)
    fleet.start_programs(f"{fleet.color}:*")
    fleet.wait_consuming(fleet.nodes())
    subprocess.run(
        [sys.executable, "manage.py", "resume_consumers", "--ignore-missing"],
        cwd=ROOT,
        env=fleet.env,
        capture_output=True,
        timeout=120,
    )


# -- one broker's run ------------------------------------------------------------------


def say(broker: str, text: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} [{broker}] {text}", flush=True)


def describe(deploy: Deploy) -> str:
    parts = [f"round {deploy.round + 1} {deploy.strategy}:"]
    if deploy.error:
        parts.append(f"ERROR {deploy.error.splitlines()[0]}")
    if deploy.gate_exit is not None:
        parts.append(
            f"gate {deploy.gate_verdict} in {deploy.gate_s:.1f} s ({deploy.gate_blockers} blockers)"
        )
    if deploy.looks:
        seen = " ".join("?" if n < 0 else str(n) for n in deploy.seen)
        parts.append(
            f"{deploy.looks} looks (running: {seen})" + (", forced" if deploy.forced else "")
        )
    if deploy.done:
        parts.append(
            f"new workers consuming after {deploy.deploy_s:.1f} s (stop {deploy.stop_s:.1f} s)"
        )
    if deploy.skipped:
        parts.append("skipped")
    if deploy.sigkilled:
        parts.append(f"{deploy.sigkilled} SIGKILLed")
    return " ".join(parts)


def run_broker(broker: str, params: Params, partial: Path) -> None:
    """The whole run on one broker; its figures go to ``partial`` whatever happens."""
    tag = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"broker": broker, "deploys": [], "errors": []}
    started = time.time()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"deploys-{broker}-")))
        if params.logs:  # after the fleet has stopped, before the directory goes
            stack.callback(keep_logs, tmp, Path(params.logs) / broker)
        broker_url = stack.enter_context(broker_room(broker, tag))
        database_url = stack.enter_context(database(f"taskmaster_deploys_{tag}_{broker}"))
        env = environment(broker_url, database_url, tmp, params)
        prepare_database(env)
        fleet = stack.enter_context(supervised(tmp, env, params, tag))
        say(broker, f"{params.workers} workers consuming under supervisord; load starts")
        producer = Producer(broker_url, params)
        producer.start()
        deploys: list[Deploy] = []
        try:
            time.sleep(params.warmup)  # the baseline: the same load, no deploy
            result["warmup_end"] = time.time()
            order = random.Random(params.seed + 1)  # the deploys' order and spacing, seeded
            for round_ in range(params.deploys):
                strategies = list(params.strategies)
                order.shuffle(strategies)
                for strategy in strategies:
                    time.sleep(order.uniform(*params.settle))
                    deploy = one_deploy(fleet, strategy, round_, len(deploys))
                    deploys.append(deploy)
                    say(broker, describe(deploy))
            time.sleep(params.settle[1])
            producer.stop()
            say(broker, f"load stopped ({len(producer.sent)} tasks sent); draining the queue")
            result["drained"] = final_drain(fleet, producer.sent, database_url, params, broker)
        except BaseException as error:
            result["errors"].append(f"{type(error).__name__}: {error}"[:3000])
            result["interrupted"] = isinstance(error, KeyboardInterrupt)
            raise
        finally:
            producer.stop()
            if producer.error:
                result["errors"].append(f"producer: {producer.error}")
            result["deploys"] = [asdict(d) | {"deploy_s": d.deploy_s} for d in deploys]
            result["elapsed_s"] = round(time.time() - started, 1)
            try:  # the figures even when the run broke
                rows = read_ledger(database_url)
                if params.logs:
                    keep_ledger(rows, producer.sent, Path(params.logs) / broker)
                result["accounting"] = account(
                    producer.sent, rows, deploys, result.get("warmup_end", time.time()), params
                )
            except Exception as error:
                result["errors"].append(f"accounting: {error!r}")
            partial.write_text(json.dumps(result, indent=2) + "\n")


def keep_ledger(rows: list[dict[str, Any]], sent: list[Job], into: Path) -> None:
    """The ledger and what was sent, as CSV beside the logs: each figure can be traced."""
    import csv

    into.mkdir(parents=True, exist_ok=True)
    with (into / "ledger.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["task_id"])
        writer.writeheader()
        writer.writerows(rows)
    with (into / "sent.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["id", "kind", "seconds", "sent"])
        writer.writeheader()
        writer.writerows(asdict(job) for job in sent)


def keep_logs(directory: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in directory.glob("*.log"):
        shutil.copy(log, into / log.name)


def final_drain(
    fleet: Fleet, sent: list[Job], database_url: str, params: Params, broker: str
) -> bool:
    """Workers running, no new task: wait until every task sent has ended, or started and
    died acknowledged (lost), and nothing runs any more. On Redis the messages a SIGKILLed
    worker held (an acks_late task it ran, tasks it had prefetched) come back only after the
    visibility timeout: wait for them too."""
    waits = params.seconds["blocking"][1] + 120
    if broker == "redis":
        waits += params.visibility_timeout
    deadline = time.monotonic() + waits
    kinds = {job.id: job.kind for job in sent}
    fleet.wait_started()
    while time.monotonic() < deadline:
        starts, ends = Counter(), Counter()
        for row in read_ledger(database_url):
            (starts if row["event"] == "start" else ends)[row["task_id"]] += 1
        pending = [
            task
            for task, kind in kinds.items()
            if not ends[task] and (kind == "interruptible" or not starts[task])
        ]
        active = fleet.active()
        if not pending and active is not None and not any(active.values()):
            return True
        time.sleep(2)
    say(broker, f"drain: still {len(pending)} task(s) pending after {waits:.0f} s")
    return False


def read_ledger(database_url: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return list(conn.execute("SELECT * FROM deploy_ledger ORDER BY at"))


# -- accounting ------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def account(
    sent: list[Job],
    rows: list[dict[str, Any]],
    deploys: list[Deploy],
    warmup_end: float,
    params: Params,
) -> dict[str, Any]:
    """Every task sent, accounted for; each loss, second run and delay put on a deploy."""
    starts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    ends: Counter[str] = Counter()
    for row in rows:
        if row["event"] == "start":
            starts[row["task_id"]].append(row)
        else:
            ends[row["task_id"]] += 1

    def stopped_by(node: str, at: float) -> Deploy | None:
        """The first deploy that stopped this worker after this moment."""
        candidates = [d for d in deploys if d.stopped.get(node, 0) >= at]
        return min(candidates, key=lambda d: d.stopped[node]) if candidates else None

    def delayed_by(sent: float, started: float) -> Deploy | None:
        """The first deploy under way while the task waited (from its request until its new
        workers consumed and its old ones were gone: a worker SIGKILLed with the task
        prefetched strands it on Redis until the visibility timeout); else, for a task held
        up by the backlog a deploy left, the last deploy requested before it started."""
        for d in deploys:
            end = max([d.consuming or d.requested, *d.stopped.values()])
            if d.requested <= started and end >= sent:
                return d
        candidates = [d for d in deploys if d.requested <= started]
        return max(candidates, key=lambda d: d.requested) if candidates else None

    first_deploy = min((d.requested for d in deploys), default=float("inf"))
    baseline = [
        starts[job.id][0]["at"] - job.sent
        for job in sent
        if job.sent < warmup_end and starts[job.id] and starts[job.id][0]["at"] < first_deploy
    ]
    threshold = percentile(baseline, 0.95) + params.delay_margin

    figures: dict[str, Counter[str]] = {s: Counter() for s in (*STRATEGIES, "none")}
    # Per deploy (its index), the ids of the tasks it lost or had run twice, and its delays.
    by_deploy: dict[int, dict[str, Any]] = defaultdict(lambda: defaultdict(list))
    totals: Counter[str] = Counter()

    def charge(who: Deploy | None, key: str, task: Job) -> None:
        figures[who.strategy if who else "none"][key] += 1
        totals[key] += 1
        if who is not None:
            by_deploy[who.index][key].append(task.id if key != "delayed" else task.kind)

    for job in sent:
        runs = starts[job.id]
        totals[f"sent_{job.kind}"] += 1
        if not runs:
            totals["never_started"] += 1
            continue
        early = job.kind in EARLY_ACK
        if len(runs) > 1:
            key = "early_ack_twice" if early else "ran_twice"
            charge(stopped_by(runs[0]["node"], runs[0]["at"]), key, job)
        if not ends[job.id]:
            key = f"lost_{job.kind}" if early else "late_ack_unfinished"
            charge(stopped_by(runs[-1]["node"], runs[-1]["at"]), key, job)
        elif ends[job.id] == 1 and len(runs) == 1:
            totals["ended_once"] += 1
        if runs[0]["at"] - job.sent > threshold:
            charge(delayed_by(job.sent, runs[0]["at"]), "delayed", job)
    totals["sent"] = len(sent)
    totals["lost"] = sum(totals[f"lost_{kind}"] for kind in EARLY_ACK)
    return {
        "tasks": dict(totals),
        "baseline_wait_p95_s": round(percentile(baseline, 0.95), 3),
        "baseline_wait_median_s": round(statistics.median(baseline), 3) if baseline else None,
        "baseline_tasks": len(baseline),
        "delay_threshold_s": round(threshold, 3),
        "strategies": {
            s: summary([d for d in deploys if d.strategy == s], figures[s]) for s in STRATEGIES
        },
        "unattributed": dict(figures["none"]),  # a loss no deploy explains would show here
        "by_deploy": {
            index: {key: (len(v) if key == "delayed" else v) for key, v in found.items()}
            for index, found in sorted(by_deploy.items())
        },
    }


def summary(deploys: list[Deploy], counts: Counter[str]) -> dict[str, Any]:
    times = [d.deploy_s for d in deploys if d.deploy_s is not None]
    skipped = [d.gate_s for d in deploys if d.skipped and d.gate_s is not None]
    return {
        "deploys": len(deploys),
        "done": sum(d.done for d in deploys),
        "skipped": sum(d.skipped for d in deploys),
        "forced": sum(d.forced for d in deploys),
        "errors": sum(bool(d.error) for d in deploys),
        "lost": counts["lost_short"] + counts["lost_blocking"],
        "lost_short": counts["lost_short"],
        "lost_blocking": counts["lost_blocking"],
        "ran_twice": counts["ran_twice"],
        "early_ack_twice": counts["early_ack_twice"],
        "late_ack_unfinished": counts["late_ack_unfinished"],
        "delayed": counts["delayed"],
        "sigkilled": sum(d.sigkilled for d in deploys),
        "deploy_s_median": round(statistics.median(times), 2) if times else None,
        "deploy_s_max": round(max(times), 2) if times else None,
        "skipped_gate_s_median": round(statistics.median(skipped), 2) if skipped else None,
    }


# -- the parent: brokers, table, figures, plot ----------------------------------------


def run_children(args: argparse.Namespace, params: Params, tmp: Path) -> dict[str, Any]:
    """Each broker in a process of its own (the same arguments, plus --child): a broker that
    fails, or a Ctrl-C, leaves the other's figures, which it writes whatever happens."""
    partials = {broker: tmp / f"{broker}.json" for broker in params.brokers}
    children: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(broker: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, __file__, *sys.argv[1:], "--child", broker]
        return subprocess.Popen([*argv, "--partial", str(partials[broker])], cwd=ROOT)

    interrupted = False
    try:
        if params.parallel:
            children = {broker: spawn(broker) for broker in params.brokers}
            for child in children.values():
                child.wait()
        else:
            for broker in params.brokers:
                children[broker] = spawn(broker)
                children[broker].wait()
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # On Ctrl-C each child got it too; on a SIGTERM to this process, pass it on. Each
        # cleans up its own fleet and writes its figures: wait for them.
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            child.wait()
    results: dict[str, Any] = {"interrupted": interrupted} if interrupted else {}
    for broker, path in partials.items():
        if path.exists():
            results[broker] = json.loads(path.read_text())
        else:
            results[broker] = {"broker": broker, "errors": ["no figures: the run failed early"]}
    return results


TABLE = (  # heading, and the cell from a strategy's figures
    ("deploys", lambda s: s["deploys"]),
    ("done", lambda s: s["done"]),
    ("skipped", lambda s: s["skipped"]),
    ("forced", lambda s: s["forced"]),
    ("errors", lambda s: s["errors"]),
    ("lost (short+blocking)", lambda s: f"{s['lost']} ({s['lost_short']}+{s['lost_blocking']})"),
    ("ran twice", lambda s: s["ran_twice"]),
    ("deploy s median", lambda s: s["deploy_s_median"]),
    ("deploy s max", lambda s: s["deploy_s_max"]),
    ("delayed", lambda s: s["delayed"]),
    ("SIGKILLed", lambda s: s["sigkilled"]),
)


def table(results: dict[str, Any]) -> str:
    lines = [("broker", "strategy", *(head for head, _ in TABLE))]
    for broker, result in results.items():
        strategies = (result.get("accounting") or {}).get("strategies") or {}
        for strategy in STRATEGIES:
            figures = strategies.get(strategy)
            if figures and figures["deploys"]:
                cells = (cell(figures) for _, cell in TABLE)
                lines.append((broker, strategy, *("-" if c is None else str(c) for c in cells)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


BROKER_COLORS = {"rabbitmq": "tab:orange", "redis": "tab:red"}


def plot(results: dict[str, Any], params: Params, path: Path) -> None:
    """Three panels, a bar per strategy and broker: tasks lost (and run twice) in all the
    deploys, the time a deploy takes (median, a line up to the max), the tasks delayed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    brokers = [b for b, r in results.items() if (r.get("accounting") or {}).get("strategies")]
    shown = [
        s
        for s in STRATEGIES
        if any(results[b]["accounting"]["strategies"][s]["deploys"] for b in brokers)
    ]
    fig, (losses, times, delays) = plt.subplots(1, 3, figsize=(14, 4.6))
    width = 0.8 / max(1, len(brokers))
    for i, broker in enumerate(brokers):
        figures = [results[broker]["accounting"]["strategies"][s] for s in shown]
        xs = [n + (i - (len(brokers) - 1) / 2) * width for n in range(len(shown))]
        color = BROKER_COLORS.get(broker)
        lost = [f["lost"] for f in figures]
        losses.bar(xs, lost, width, color=color, label=f"early-ack lost ({broker})")
        losses.bar(
            xs,
            [f["ran_twice"] for f in figures],
            width,
            bottom=lost,
            color=color,
            hatch="//",
            alpha=0.4,
            label=f"late-ack run twice ({broker})",
        )
        medians = [f["deploy_s_median"] or 0 for f in figures]
        highs = [(f["deploy_s_max"] or 0) - m for f, m in zip(figures, medians, strict=True)]
        times.bar(
            xs, medians, width, yerr=[[0] * len(highs), highs], capsize=3, color=color, label=broker
        )
        delays.bar(xs, [f["delayed"] for f in figures], width, color=color, label=broker)
    # What the bars do not show: deploys the gate skipped, deploys look-first forced.
    labels = []
    for s in shown:
        notes = {b: results[b]["accounting"]["strategies"][s] for b in brokers}
        if s == "gate":
            s += "\nskipped " + ", ".join(str(n["skipped"]) for n in notes.values())
        elif s == "look-first":
            s += "\nforced " + ", ".join(str(n["forced"]) for n in notes.values())
        labels.append(s)
    deploys = max(
        (results[b]["accounting"]["strategies"][s]["deploys"] for b in brokers for s in shown),
        default=0,
    )
    losses.set(ylabel="tasks", title=f"Tasks lost / run twice in {deploys} deploys each")
    times.set(
        ylabel="seconds", title="Deploy requested → new workers consuming\n(median, line to max)"
    )
    delays.set(ylabel="tasks", title="Tasks delayed by the deploys")
    for axes in (losses, times, delays):
        axes.set_xticks(range(len(shown)), labels=labels, fontsize=8)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=7)
    for axes in (losses, delays):
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    info = next(iter(results.values())).get("machine", {})
    fig.suptitle(
        f"{params.workers} prefork workers (concurrency {params.concurrency}) under supervisord,"
        f" {params.rate:g} tasks/s, on {' and '.join(brokers)}"
        f" ({info.get('cores', '?')} cores, {info.get('date', '')}; skipped, forced: per broker)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def interrupted(signum: int, frame: Any) -> None:
    """SIGTERM as SIGINT, once: a second signal must not break the cleanup of the first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deploys", type=int, help="deploys per strategy (default 20; --quick 3)")
    parser.add_argument("--broker", choices=["rabbitmq", "redis", "both"], default="both")
    parser.add_argument("--seed", type=int, default=20261221)
    parser.add_argument(
        "--scale", type=float, help="multiply every duration (tasks, grace, gate timeout) by this"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 deploys each, durations divided by 3"
    )
    parser.add_argument(
        "--sequential", action="store_true", help="the brokers one after the other (twice as long)"
    )
    parser.add_argument(
        "--strategies",
        default=",".join(STRATEGIES),
        help=f"a comma-separated subset of {','.join(STRATEGIES)} (default: all)",
    )
    parser.add_argument("--logs", type=Path, help="keep the workers' and supervisord's logs here")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "deploys.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "deploys.png")
    parser.add_argument("--child", choices=list(BROKER_BASES), help=argparse.SUPPRESS)
    parser.add_argument("--partial", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = make_params(args)
    # Set, not inherited: a shell without job control starts background commands with
    # SIGINT ignored, and Python keeps it so.
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    if args.child:
        try:
            run_broker(args.child, params, args.partial)
        except KeyboardInterrupt:
            sys.exit(130)
        return
    try:
        import matplotlib  # noqa: F401  (the plot comes last: say so now, not in half an hour)
    except ImportError:
        sys.exit(
            "the plot needs matplotlib: `make benchmark-deploys` installs it (the bench extra)"
        )
    # A user's install has its bytecode compiled; every gate and worker start would otherwise.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "taskmaster", "project", "benchmarks"], cwd=ROOT
    )
    started = time.time()
    info = machine(**versions())
    print(json.dumps({"machine": info, "params": asdict(params)}), flush=True)
    with tempfile.TemporaryDirectory(prefix="deploys-") as tmp:
        results = run_children(args, params, Path(tmp))
    if results.pop("interrupted", False):
        print(table(results))
        sys.exit("interrupted: every fleet stopped; the figures so far are above, none written")
    for result in results.values():
        result["machine"] = info
    output = {
        "machine": info,
        "seed": params.seed,
        "params": asdict(params) | {"visibility_timeout_redis": params.visibility_timeout},
        "definitions": DEFINITIONS,
        "elapsed_s": round(time.time() - started, 1),
        "brokers": results,
    }
    args.out.write_text(json.dumps(output, indent=2) + "\n")
    print(table(results))
    for broker, result in results.items():
        tasks = (result.get("accounting") or {}).get("tasks")
        print(f"{broker}: tasks {json.dumps(tasks)}; errors: {result.get('errors') or 'none'}")
    plot(results, params, args.plot)
    print(f"figures: {args.out}\nplot: {args.plot}\nelapsed: {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
