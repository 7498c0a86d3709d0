"""Benchmark: the gate against a simulated fleet of 64, 256 and 1,000 workers (issue 21).

    make benchmark-fleet [ARGS="--sizes 64,256 --brokers rabbitmq --runs 3 --quick"]

Real workers cannot reach a thousand on two cores: the fleet is simulated
(``benchmarks/fleet``), on the machine's real RabbitMQ and Redis (a vhost and a database of
their own). A simulated worker answers every command the gate sends with Celery's own
handlers and consumes with a real ``basic.consume`` / ``BRPOP`` (tests/integration/
test_fleet_simulator.py proves the gate cannot tell it from a real worker). It costs the
machine what a worker costs to answer, so the whole fleet's answers share the two cores with
the gate: each figure comes with the CPU time the gate and the fleet spent on it.

For each broker and fleet size, medians of ``--runs`` runs of:

- **whole gate**: ``manage.py prepare_deploy --hold 600``, process start to exit (it drains
  every worker, looks, clears and holds the drain), with its peak RSS (``VmHWM``) and its
  CPU time (``wait4``);
- **restore**: ``manage.py resume_consumers`` right after, process start to exit (it
  releases the lease, verifies every worker consumes again), peak RSS and CPU;
- **one poll**: ``Drain.poll`` at steady state, in this process (as gate_benchmark.py), wall
  and CPU of this process, and the broker's count alone;
- **readiness page**: a GET of the admin's readiness page with a new look (a dry run), in a
  process of its own (``benchmarks/fleet/readiness.py``);
- beside them, on the same fleet: ``celery -A project inspect active`` (process start to
  exit, peak RSS), ``celery -A project inspect --help`` (the CLI's start alone) and
  ``manage.py prepare_deploy --help`` (the command's start alone), so that the gate's own
  work compares with the CLI's: (gate - command start) / (inspect - CLI start).

Writes ``benchmarks/fleet.json`` and ``docs/img/fleet.png``; ``--profile DIR`` also writes,
at the largest size, cProfile files of one gate, one restore and one poll, and the timelines
of the broadcasts of one gate, one restore and one dry run (``benchmarks/fleet/trace.py``).
Asserts nothing but that each run did its job (a clear, a complete restore, every worker
heard).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.machine import machine  # noqa: E402

DATABASE = "postgres://postgres@127.0.0.1:5432/taskmaster_fleet"
VHOST = "taskmaster_fleet"
BROKERS = {
    "rabbitmq": f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
    "redis": "redis://127.0.0.1:6379/0",  # a database is claimed in setup(), as the tests do
}
SIZES = [64, 256, 1000]
# The goals, at 1,000 workers.
GOALS = {
    "gate_vs_inspect_startups_aside": 1.25,
    "poll_s": 0.3,
    "gate_rss_mb": 150.0,
    "readiness_s": 2.0,
    "restore_s": 5.0,
}

os.environ.update(DATABASE_URL=DATABASE, DJANGO_SETTINGS_MODULE="tests.support.settings", TZ="UTC")
time.tzset()


@dataclass
class Process:
    """One command, process start to exit."""

    wall: float
    cpu: float  # its user + system time
    rss_mb: float  # its peak resident set
    code: int
    out: str
    err: str
    fleet_cpu: float  # what the fleet spent meanwhile


def run(lab: Any, fleet: Any, *args: str, settings: str = "project.settings") -> Process:
    """``python *args`` as a deploy runs it: its CPU time from ``wait4``, its peak memory
    from ``VmHWM`` (``wait4``'s ``ru_maxrss`` would be this process's own, larger, RSS: a
    child's counts the memory of the process it was forked from)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = fleet.cpu_seconds()
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=lab.env_for(settings=settings),
            stdout=out,
            stderr=err,
        )
        peak = HighWater(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        fleet_cpu = fleet.cpu_seconds() - before
        out.seek(0)
        err.seek(0)
        return Process(
            wall,
            usage.ru_utime + usage.ru_stime,
            peak.stop(),
            process.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            fleet_cpu,
        )


class HighWater:
    """A process's peak resident memory (``VmHWM``, MB), read every 10 ms until it exits."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.peak = 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        while not self.done.is_set():
            try:
                status = self.path.read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)
            self.done.wait(0.01)

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return round(self.peak, 1)


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def setup() -> None:
    from tests.support.run import claim_redis_db

    BROKERS["redis"] = claim_redis_db(BROKERS["redis"], "fleet-benchmark")  # given back at exit
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    name = DATABASE.rsplit("/", 1)[1]
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
        capture_output=True,
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # As installed: bytecode compiled (gate_benchmark.py says why).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "taskmaster", "project"], cwd=ROOT)
    import django

    django.setup()


@contextmanager
def fleet_on(broker: str, size: int, per_process: int) -> Iterator[tuple[Any, Any, float]]:
    """A lab on ``broker`` with a started fleet of ``size``; how long the fleet took to start."""
    from benchmarks.fleet import Fleet
    from taskmaster.models import Worker
    from tests.support.lab import Lab

    Worker.objects.all().delete()  # the roster of an earlier size is not this fleet's
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(BROKERS[broker], DATABASE, Path(tmp))
        fleet = Fleet(
            size,
            lab.env_for(settings="project.settings"),
            queues=[lab.queue],
            per_process=per_process,
            log_dir=Path(tmp),
        )
        started = time.perf_counter()
        fleet.start(timeout=600)
        took = time.perf_counter() - started
        try:
            yield lab, fleet, took
        finally:
            fleet.stop()
            lab.close()


def consuming(lab: Any, names: list[str]) -> int:
    """How many of these workers answer and consume the lab's queue."""
    replies = lab.app.control.broadcast(
        "active_queues", destination=names, limit=len(names), reply=True, timeout=3.0
    )
    return sum(
        1
        for answer in replies or []
        for queues in answer.values()
        if [q["name"] for q in queues] == [lab.queue]
    )


# -- one poll, in this process -------------------------------------------------------------


class Quiet:
    def note(self, text: str) -> None:
        pass

    def polled(self, gate: Any, decision: Any, now: float) -> None:
        pass


def one_poll(
    lab: Any, fleet: Any, registry: Any, polls: int, profile: Path | None = None
) -> dict[str, Any]:
    """Steady-state polls of a real drain (after the first, which drains), as
    gate_benchmark.py measures them: wall and CPU of this process, the fleet's CPU, the
    broker's count alone; then the drain's restore, in process."""
    from taskmaster.cluster.control import Cluster
    from taskmaster.drain.fleet import Fleet as Roster
    from taskmaster.drain.fleet import app_queues
    from taskmaster.drain.records import open_run
    from taskmaster.drain.request import GateRequest
    from taskmaster.drain.run import Drain
    from taskmaster.drain.stop import StopRequest
    from taskmaster.gate.rules import Gate, Verdict

    cluster = Cluster(lab.app, reply_timeout=1.0)
    request = GateRequest(timeout=300, interval=300, hold=5).resolved()
    walls, cpus, fleet_cpus, counts = [], [], [], []
    with cluster.connected():
        first = cluster.discover()
        assert len(first.answers) == fleet.count, (len(first.answers), fleet.count)
        gate = Gate(registry, started_at=time.time(), timeout=300, interval=300)
        roster = Roster(cluster, gate, declared=app_queues(lab.app, registry))
        gate_run = open_run(timeout=300, interval=300, hold=5, broker="bench", workers=first.queues)
        drain = Drain(
            cluster,
            gate,
            gate_run,
            Quiet(),
            StopRequest(),
            request=request,
            first=first,
            fleet=roster,
        )
        drain.poll()  # drains
        for _ in range(polls):
            before, cpu = fleet.cpu_seconds(), time.process_time()
            started = time.perf_counter()
            decision = drain.poll()
            walls.append(time.perf_counter() - started)
            cpus.append(time.process_time() - cpu)
            fleet_cpus.append(fleet.cpu_seconds() - before)
            assert not decision.blockers, decision.blockers
        assert len(roster.heard) == fleet.count
        if profile is not None:
            with cProfile.Profile() as profiler:
                drain.poll()
            profiler.dump_stats(profile)
        heard = dict(roster.heard)
        for _ in range(polls):
            started = time.perf_counter()
            roster.look(heard)
            counts.append(time.perf_counter() - started)
        started = time.perf_counter()
        drain.finish(Verdict.BLOCKED, ())  # restore and close the run
        restored = time.perf_counter() - started
    return {
        "poll_s": median(walls),
        "poll_cpu_s": median(cpus),
        "poll_fleet_cpu_s": median(fleet_cpus),
        "broker_count_s": median(counts),
        "restore_in_process_s": round(restored, 3),
    }


# -- one broker, one size ------------------------------------------------------------------


def figures(
    broker: str, size: int, runs: int, registry: Any, per_process: int, profile: Path | None
) -> dict[str, Any]:
    with fleet_on(broker, size, per_process) as (lab, fleet, started):
        names = fleet.names
        time.sleep(2)  # the fleet's first heartbeats and BRPOPs settle
        before = fleet.cpu_seconds()
        time.sleep(3)
        row: dict[str, Any] = {
            "broker": broker,
            "workers": size,
            "fleet_start_s": round(started, 1),
            # What the idle fleet takes of the machine (heartbeats, Redis' BRPOP loops), in cores.
            "fleet_idle_cores": round((fleet.cpu_seconds() - before) / 3, 2),
        }
        row.update(one_poll(lab, fleet, registry, polls=5))
        assert consuming(lab, names) == size, "the in-process restore left workers drained"
        each: dict[str, list[float]] = {}

        def keep(key: str, value: float) -> None:
            each.setdefault(key, []).append(value)

        for _ in range(runs):
            keep("command_start_s", run(lab, fleet, "manage.py", "prepare_deploy", "--help").wall)
            cli = run(lab, fleet, "-m", "celery", "-A", "project", "inspect", "--help")
            keep("celery_cli_start_s", cli.wall)
            gate = run(lab, fleet, "manage.py", "prepare_deploy", "--hold", "600", "--json")
            assert gate.code == 0, gate.err[-3000:]
            report = json.loads(gate.out)
            assert len(report["workers"]) == size and not report["blockers"], report["verdict"]
            keep("gate_s", gate.wall)
            keep("gate_cpu_s", gate.cpu)
            keep("gate_rss_mb", gate.rss_mb)
            keep("gate_fleet_cpu_s", gate.fleet_cpu)
            restore = run(lab, fleet, "manage.py", "resume_consumers")
            assert restore.code == 0, restore.err[-3000:]
            keep("restore_s", restore.wall)
            keep("restore_cpu_s", restore.cpu)
            keep("restore_rss_mb", restore.rss_mb)
            # Workers the restore found not consuming yet after the release, and added back
            # one add_consumer broadcast each (restore.py's "restoring <worker>: …" lines).
            keep("restore_adds", (restore.out + restore.err).count("\nrestoring "))
            assert consuming(lab, names) == size, "resume_consumers left workers drained"
            inspect = run(lab, fleet, "-m", "celery", "-A", "project", "inspect", "active")
            assert inspect.out.count("-> ") == size, inspect.out[-2000:]
            keep("inspect_active_cli_s", inspect.wall)
            keep("inspect_cpu_s", inspect.cpu)
            keep("inspect_rss_mb", inspect.rss_mb)
            keep("inspect_fleet_cpu_s", inspect.fleet_cpu)
        page = run(lab, fleet, "-m", "benchmarks.fleet.readiness", "--runs", str(runs))
        assert page.code == 0, page.err[-3000:]
        seen = json.loads(page.out)
        assert set(seen["heard"]) == {size}, seen
        each["readiness_s"] = seen["page_s"]
        each["readiness_look_s"] = seen["look_s"]
        row.update({key: median(values) for key, values in each.items()})
        row["runs"] = each
        row["gate_vs_inspect"] = round(row["gate_s"] / row["inspect_active_cli_s"], 2)
        row["gate_vs_inspect_startups_aside"] = round(
            (row["gate_s"] - row["command_start_s"])
            / (row["inspect_active_cli_s"] - row["celery_cli_start_s"]),
            2,
        )
        if profile is not None:
            profiled(lab, fleet, registry, profile / f"{broker}-{size}")
        print(json.dumps({k: v for k, v in row.items() if k != "runs"}), flush=True)
        return row


def profiled(lab: Any, fleet: Any, registry: Any, prefix: Path) -> None:
    """cProfile files of one whole gate, one restore and one poll; the timeline of the
    broadcasts of one gate, one restore and one dry run (``benchmarks/fleet/trace.py``)."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    profiler = ("-m", "cProfile", "-o")
    gate = run(lab, fleet, *profiler, f"{prefix}-gate.prof", "manage.py", "prepare_deploy")
    assert gate.code == 0, gate.err[-3000:]
    restore = run(lab, fleet, *profiler, f"{prefix}-restore.prof", "manage.py", "resume_consumers")
    assert restore.code == 0, restore.err[-3000:]
    one_poll(lab, fleet, registry, polls=1, profile=Path(f"{prefix}-poll.prof"))
    for name, args in (
        ("gate", ("prepare_deploy",)),
        ("restore", ("resume_consumers",)),
        ("dry-run", ("prepare_deploy", "--dry-run")),
    ):
        traced = run(lab, fleet, "-m", "benchmarks.fleet.trace", *args)
        assert traced.code == 0, traced.err[-3000:]
        timeline = traced.err[traced.err.rindex("  start     end") :]
        Path(f"{prefix}-{name}.timeline").write_text(timeline + "\n")
    print(f"profiles and timelines: {prefix}-*", flush=True)


# -- the plot ------------------------------------------------------------------------------


def inspect_alone(row: dict[str, Any]) -> float:
    return float(row["inspect_active_cli_s"] - row["celery_cli_start_s"])


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.4))
    series: list[tuple[Any, str, str, Callable[[dict[str, Any]], float]]] = [
        (left, "whole gate", "-o", lambda r: r["gate_s"]),
        (left, "celery inspect active", ":o", lambda r: r["inspect_active_cli_s"]),
        (left, "gate, start-up aside", "-^", lambda r: r["gate_s"] - r["command_start_s"]),
        (left, "inspect, start-up aside", ":^", inspect_alone),
        (middle, "one poll", "-o", lambda r: r["poll_s"]),
        (middle, "restore (resume_consumers)", "-s", lambda r: r["restore_s"]),
        (middle, "readiness page", "-D", lambda r: r["readiness_s"]),
        (right, "gate", "-o", lambda r: r["gate_rss_mb"]),
        (right, "celery inspect active", ":o", lambda r: r["inspect_rss_mb"]),
    ]
    for broker, colour in (("rabbitmq", "tab:orange"), ("redis", "tab:red")):
        rows = [r for r in results["fleet"] if r["broker"] == broker]
        if not rows:
            continue
        sizes = [r["workers"] for r in rows]
        for axes, label, style, value in series:
            axes.plot(
                sizes,
                [value(r) for r in rows],
                style,
                color=colour,
                alpha=1.0 if style.startswith("-") else 0.6,
                label=f"{label} ({broker})",
            )
    goals = results["goals"]
    middle.axhline(goals["poll_s"], color="grey", lw=0.8, ls="--")
    middle.axhline(goals["readiness_s"], color="grey", lw=0.8, ls="--")
    middle.axhline(goals["restore_s"], color="grey", lw=0.8, ls="--")
    right.axhline(goals["gate_rss_mb"], color="grey", lw=0.8, ls="--")
    sizes = sorted({r["workers"] for r in results["fleet"]})
    for axes, title, unit in (
        (left, "Idle gate against celery inspect active", "seconds"),
        (middle, "One poll, the restore, the readiness page", "seconds"),
        (right, "Peak memory (RSS)", "MB"),
    ):
        axes.set(xscale="log", xlabel="simulated workers", ylabel=unit, title=title)
        axes.set_xticks(sizes, labels=[f"{n:,}" for n in sizes])
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    machine = results["machine"]
    fig.suptitle(
        f"Taskmaster against a simulated fleet, {machine['cores']} cores, {machine['date']} "
        "(dashed: the issue's goals at 1,000 workers)"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def verdicts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals against the largest fleet of each broker."""
    checked: dict[str, Any] = {}
    for broker in BROKERS:
        mine = [r for r in rows if r["broker"] == broker]
        if not mine:
            continue
        row = max(mine, key=lambda r: r["workers"])
        checked[broker] = {
            "workers": row["workers"],
            **{
                key: {"value": row[key], "goal": goal, "met": row[key] <= goal}
                for key, goal in GOALS.items()
            },
            "gate_vs_inspect_whole_process": row["gate_vs_inspect"],
        }
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="64,256,1000")
    parser.add_argument("--brokers", default=",".join(BROKERS), help="rabbitmq,redis")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--per-process", type=int, default=125, help="workers per process")
    parser.add_argument("--quick", action="store_true", help="64 and 256 workers, one run")
    parser.add_argument("--profile", type=Path, help="cProfile files at the largest size, here")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "fleet.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "fleet.png")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401  (the plot comes last: say so now)
    except ImportError:
        sys.exit("the plot needs matplotlib: `make benchmark-fleet` installs it (the bench extra)")
    sizes = [64, 256] if args.quick else [int(n) for n in args.sizes.split(",")]
    runs = 1 if args.quick else args.runs
    brokers = [b for b in args.brokers.split(",") if b]
    setup()
    from taskmaster.conf import load_app
    from taskmaster.gate.registry import load_registry

    registry = load_registry(load_app())
    results: dict[str, Any] = {"machine": machine(), "goals": GOALS, "fleet": []}
    print(json.dumps(results["machine"]), flush=True)
    for broker in brokers:
        for size in sizes:
            profile = args.profile if args.profile and size == max(sizes) else None
            results["fleet"].append(
                figures(broker, size, runs, registry, args.per_process, profile)
            )
    results["verdicts"] = verdicts(results["fleet"])
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot)
    print(json.dumps(results["verdicts"], indent=2))
    print(f"figures: {args.out}\nplot: {args.plot}")


if __name__ == "__main__":
    main()
