"""Benchmark: the gate against real brokers and real workers, beside the naive way.

    make benchmark [ARGS="--runs 5 --quick"]

Measures on the machine's RabbitMQ and Redis (each in a vhost / database of its own) and
prints, with the machine it ran on:

(a) lag from the last blocker ending (the worker's own "succeeded" log line) to the verdict
    (the report's ``finished_at``), at the default interval (20 s), task events off and on;
    beside it, in the same runs, a naive operator polling ``inspect().active()`` every 20 s;
(b) one poll (``Drain.poll`` at steady state, in this process) and one whole idle gate
    (``manage.py prepare_deploy``, process start to exit) for 1, 4, 16 and 64 solo workers;
    beside them, in the same runs, one ``celery -A project inspect active`` CLI call and one
    ``celery -A project control cancel_consumer`` CLI call; and the start-up under both,
    touching no worker: ``manage.py prepare_deploy --help`` and ``celery -A project inspect
    --help``;
(c) one poll and one whole gate with 0, 500 and 5,000 held (prefetched, blocking) tasks:
    how long the poll takes and how far past its deadline the gate ends.

Writes the figures to ``benchmarks/results.json`` and the plot to
``docs/img/performance.png``. Asserts nothing: the numbers go to docs/performance.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "postgres://postgres@127.0.0.1:5432/taskmaster_bench"
BROKERS = {
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/taskmaster_bench",
    "redis": "redis://127.0.0.1:6379/0",  # a database is claimed in setup(), as the tests do
}
os.environ.update(DATABASE_URL=DATABASE, DJANGO_SETTINGS_MODULE="tests.support.settings", TZ="UTC")
time.tzset()

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402

from benchmarks.machine import machine  # noqa: E402
from taskmaster.cluster.control import Cluster  # noqa: E402
from taskmaster.conf import load_app  # noqa: E402
from taskmaster.drain.fleet import Fleet, app_queues  # noqa: E402
from taskmaster.drain.records import open_run  # noqa: E402
from taskmaster.drain.request import GateRequest  # noqa: E402
from taskmaster.drain.run import Drain  # noqa: E402
from taskmaster.drain.stop import StopRequest  # noqa: E402
from taskmaster.gate.registry import load_registry  # noqa: E402
from taskmaster.gate.rules import Decision, Gate, Verdict  # noqa: E402
from tests.support.lab import Lab, wait_for  # noqa: E402
from tests.support.run import claim_redis_db  # noqa: E402

SUCCEEDED = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/\S+\] Task \S+\[(?P<id>[\w-]+)\] succeeded"
)


def setup() -> None:
    BROKERS["redis"] = claim_redis_db(BROKERS["redis"], "benchmark")  # given back at exit
    vhost = "taskmaster_bench"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "CREATE DATABASE taskmaster_bench"],
        capture_output=True,
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    # A user's install has its bytecode compiled (pip compiles what it installs); a checkout
    # run with PYTHONDONTWRITEBYTECODE would compile taskmaster and the project at every start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", "taskmaster", "project"], cwd=ROOT)


@contextmanager
def lab_on(broker: str) -> Iterator[Lab]:
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(BROKERS[broker], DATABASE, Path(tmp))
        try:
            yield lab
        finally:
            lab.close()
            purge(lab)


def purge(lab: Lab) -> None:
    with lab.app.connection_for_write() as conn:
        channel = conn.default_channel
        for name in (lab.queue, f"{lab.queue}-2"):
            with contextlib.suppress(Exception):  # not declared on this broker: nothing to purge
                channel.queue_purge(name)


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def wall(lab: Lab, *args: str) -> tuple[float, Any]:
    started = time.perf_counter()
    result = lab.manage(*args)
    return time.perf_counter() - started, result


def celery_cli(lab: Lab, *args: str) -> float:
    return python(lab, "-m", "celery", "-A", "project", *args)


def python(lab: Lab, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=lab.env_for(settings="project.settings"),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - started


def restore_all(lab: Lab) -> None:
    result = lab.manage("resume_consumers", "--ignore-missing")
    assert result.code == 0, result.text


# -- (a) lag ---------------------------------------------------------------------------


def succeeded_at(log: str, task_id: str) -> float | None:
    for line in log.splitlines():
        match = SUCCEEDED.match(line)
        if match and match["id"] == task_id:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
            return at.replace(tzinfo=UTC).timestamp()
    return None


def naive_poller(app: Celery, node: str, every: float, found: list[float]) -> threading.Thread:
    """An operator's loop: `celery inspect active` every 20 s until nothing runs."""

    def loop() -> None:
        while True:
            replies = app.control.inspect(destination=[node], timeout=1.0).active() or {}
            if not replies.get(node):
                found.append(time.time())
                return
            time.sleep(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def lag(broker: str, runs: int) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    lengths = [3, 7, 11, 15]  # task lengths, so the naive poll's phase varies
    for events in (False, True):
        with lab_on(broker) as lab:
            node = lab.start_worker("w1", concurrency=2).name
            if events:
                lab.app.control.enable_events(destination=[node])
            lags, naive = [], []
            for n in range(runs):
                task_id = lab.send("send_receipt", lengths[n % len(lengths)])
                lab.wait_active(node)
                found: list[float] = []
                poller = naive_poller(lab.app, node, 20.0, found) if not events else None
                result = lab.manage("prepare_deploy", "--timeout", "60", "--hold", "2", "--json")
                assert result.code == 0, result.text
                ended = wait_for(lambda t=task_id: succeeded_at(lab.workers[0].logs(), t))
                verdict = datetime.fromisoformat(json.loads(result.out)["finished_at"]).timestamp()
                lags.append(verdict - ended)
                if poller is not None:
                    poller.join(timeout=40)
                    naive.append(found[0] - ended)
                restore_all(lab)
            key = "events_on" if events else "events_off"
            figures[key] = {"lag_s": median(lags), "max_s": round(max(lags), 3), "runs": lags}
            if naive:
                figures["naive_20s_polling"] = {"lag_s": median(naive), "runs": naive}
    return figures


# -- (b) workers, (c) held tasks: one poll in this process -----------------------------


class Quiet:
    def note(self, text: str) -> None:
        pass

    def polled(self, gate: Gate, decision: Decision, now: float) -> None:
        pass


def one_poll(lab: Lab, registry: Any, polls: int = 5) -> tuple[float, float]:
    """The median of steady-state polls (after the first, which drains) of a real drain,
    and of the broker's count alone (part of each poll: ``Fleet.look``)."""
    cluster = Cluster(lab.app, reply_timeout=1.0)
    request = GateRequest(timeout=300, interval=300, hold=5).resolved()
    with cluster.connected():
        first = cluster.discover()
        gate = Gate(registry, started_at=time.time(), timeout=300, interval=300)
        fleet = Fleet(cluster, gate, declared=app_queues(lab.app, registry))
        run = open_run(timeout=300, interval=300, hold=5, broker="bench", workers=first.queues)
        drain = Drain(
            cluster, gate, run, Quiet(), StopRequest(), request=request, first=first, fleet=fleet
        )
        drain.poll()
        took = [timed(drain.poll) for _ in range(polls)]
        heard = dict(fleet.heard)
        counted = [timed(lambda: fleet.look(heard)) for _ in range(polls)]
        drain.finish(Verdict.BLOCKED, ())  # restore and close the run
    return median(took), median(counted)


def workers_figures(
    broker: str, counts: list[int], runs: int, registry: Any
) -> list[dict[str, Any]]:
    rows = []
    for count in counts:
        with lab_on(broker) as lab:
            started = [
                lab.start_worker(f"s{n}", pool="solo", concurrency=1, wait=False)
                for n in range(count)
            ]
            for worker in started:
                lab.wait_ready(worker, timeout=300)
            time.sleep(2)
            poll, counting = one_poll(lab, registry)
            gates, inspects, cancels, commands, celerys = [], [], [], [], []
            for _ in range(runs):
                # The floor under each, touching no worker: the gate's command started and
                # ended (Django's start, the command loaded, its exit), and Celery's CLI the same.
                commands.append(python(lab, "manage.py", "prepare_deploy", "--help"))
                celerys.append(celery_cli(lab, "inspect", "--help"))
                took, result = wall(lab, "prepare_deploy", "--hold", "600")
                assert result.code == 0, result.text
                gates.append(took)
                restore_all(lab)
                inspects.append(celery_cli(lab, "inspect", "active"))
                cancels.append(celery_cli(lab, "control", "cancel_consumer", "no-such-queue"))
            row = {
                "broker": broker,
                "workers": count,
                "poll_s": poll,
                "broker_count_s": counting,
                "gate_s": median(gates),
                "inspect_active_cli_s": median(inspects),
                "cancel_consumer_cli_s": median(cancels),
                "command_start_s": median(commands),
                "celery_cli_start_s": median(celerys),
            }
            row["gate_vs_inspect"] = round(row["gate_s"] / row["inspect_active_cli_s"], 2)
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def held_figures(broker: str, counts: list[int], registry: Any) -> list[dict[str, Any]]:
    rows = []
    for count in counts:
        with lab_on(broker) as lab:
            nodes = [
                lab.start_worker(f"b{n}", concurrency=1, prefetch=max(1, count // 2) + 1).name
                for n in range(2)
            ]
            for _ in nodes:  # each worker runs one long blocking task...
                lab.send("generate_report", 600)
            with lab.app.producer_or_acquire() as producer:  # ...and holds its share of these
                for _ in range(count):
                    lab.app.send_task(
                        "project.tasks.generate_report",
                        args=(1,),
                        queue=lab.queue,
                        producer=producer,
                    )
            wait_for(lambda n=nodes, c=count: held(lab, n) >= c, timeout=120, step=1)
            poll, _ = one_poll(lab, registry, polls=3)
            timeout = 15
            took, result = wall(
                lab, "prepare_deploy", "--interval", "5", "--timeout", str(timeout), "--json"
            )
            report = json.loads(result.out)
            overshoot = (
                datetime.fromisoformat(report["finished_at"])
                - datetime.fromisoformat(report["started_at"])
            ).total_seconds() - timeout
            row = {
                "broker": broker,
                "held": count,
                "blockers": len(report["blockers"]),
                "poll_s": poll,
                "gate_s": round(took, 3),
                "past_deadline_s": round(overshoot, 3),
                "exit_code": result.code,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def held(lab: Lab, nodes: list[str]) -> int:
    replies = lab.app.control.inspect(destination=nodes, timeout=2.0).reserved() or {}
    return sum(len(tasks or []) for tasks in replies.values())


# -- the plot --------------------------------------------------------------------------


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for broker, style in (("rabbitmq", "-o"), ("redis", "--s")):
        rows = [r for r in results["workers"] if r["broker"] == broker]
        if rows:
            counts = [r["workers"] for r in rows]
            left.plot(counts, [r["gate_s"] for r in rows], style, label=f"whole gate ({broker})")
            left.plot(
                counts,
                [r["inspect_active_cli_s"] for r in rows],
                style,
                alpha=0.5,
                label=f"celery inspect active CLI ({broker})",
            )
            left.plot(
                counts, [r["poll_s"] for r in rows], style, alpha=0.8, label=f"one poll ({broker})"
            )
        rows = [r for r in results["held"] if r["broker"] == broker]
        if rows:
            held_counts = [r["held"] for r in rows]
            right.plot(
                held_counts, [r["poll_s"] for r in rows], style, label=f"one poll ({broker})"
            )
            right.plot(
                held_counts,
                [r["past_deadline_s"] for r in rows],
                style,
                alpha=0.6,
                label=f"gate end past its deadline ({broker})",
            )
    left.set(
        xscale="log", xlabel="idle workers", ylabel="seconds", title="Gate time against workers"
    )
    left.set_xticks([1, 4, 16, 64], labels=["1", "4", "16", "64"])
    right.set(
        xlabel="held tasks (prefetched, blocking)",
        ylabel="seconds",
        title="Gate time against held tasks",
    )
    for axes in (left, right):
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    fig.suptitle(f"Taskmaster on {results['machine']['cores']} cores, {results['machine']['date']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1, 4 workers; 0, 500 tasks")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "img" / "performance.png")
    args = parser.parse_args()
    try:
        import matplotlib  # noqa: F401  (the plot comes last: say so now, not in half an hour)
    except ImportError:
        sys.exit("the plot needs matplotlib: `make benchmark` installs it (the bench extra)")
    setup()
    registry = load_registry(load_app())
    counts = [1, 4] if args.quick else [1, 4, 16, 64]
    held_counts = [0, 500] if args.quick else [0, 500, 5000]
    results: dict[str, Any] = {"machine": machine(), "lag": {}, "workers": [], "held": []}
    print(json.dumps(results["machine"]), flush=True)
    for broker in BROKERS:
        results["lag"][broker] = lag(broker, runs=args.runs)
        print(json.dumps({broker: results["lag"][broker]}), flush=True)
        results["workers"] += workers_figures(broker, counts, args.runs, registry)
        results["held"] += held_figures(broker, held_counts, registry)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, args.plot)
    print(f"figures: {args.out}\nplot: {args.plot}")


if __name__ == "__main__":
    main()
