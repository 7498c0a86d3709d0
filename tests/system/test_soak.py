"""Soak: many gate cycles against a live cluster that keeps receiving tasks, with faults.

A producer thread sends a steady mix of interruptible (``acks_late``), short and blocking tasks
to the broker (RabbitMQ, then Redis) for the whole run. Three prefork workers consume them. Each
cycle runs ``prepare_deploy`` with a short deadline and, with some probability, injects a fault
while it drains: the gate is SIGKILLed, its broker connection is cut, or a worker is paused.

Every verdict is acted on as a deploy pipeline would: after a **clear** verdict the test
waits a moment (the deploy's own steps) and then SIGKILLs every worker's process group,
the harshest stop there is, and starts fresh workers under the same names; after any other
verdict (or a recovery with ``resume_consumers``) every worker must consume its queues.

Every task records, in a Redis ledger, each start and each run to the end of its body
(``tests/support/soak_tasks.py``). At the end every task sent must have run to its end at least
once, and every early-acknowledged one exactly once.

Why this catches a gate that loses tasks: an early-acknowledged task is acked when it
starts, so RabbitMQ never delivers it again. If a gate clears while one runs (or while a
worker still consumes, or holds a prefetched one it starts before the stop), the SIGKILL
"deploy" kills its body before the ``done`` increment and nothing brings it back: the
at-least-once assertion names it. A gate that clears despite an unresponsive (paused)
worker is caught the same way. Late-acknowledged tasks interrupted by the deploy come back
from RabbitMQ (counted as redeliveries), so they must still reach ``done``. A restore that
leaves a worker drained is caught after the cycle (``active_queues``) and at the end (the
broker's consumer count per queue).

A soak proves nothing if nothing happened, so it also asserts that tasks were sent (every
kind, without a send error) and that every kind of fault landed: a cycle whose fault missed
(the gate reached its verdict first) does not count, and another cycle is run in its place,
up to twice the cycles asked for.

On Redis an acknowledged-late task whose worker is killed comes back only after the
transport's visibility timeout (``soak_settings.py`` sets a minute) rather than at once, and
the soak runs half the cycles (the faults are the same; the cluster is slower to settle).

Knobs (environment): ``SOAK_CYCLES`` (default 50; half on Redis), ``SOAK_SEED`` (default:
random, printed; ``make soak`` fixes one, so CI replays), ``SOAK_FIGURES`` (a path: the figures
are written there as JSON). The seed fixes the schedule (faults, their timing, deadlines, the
task mix), not the cluster's own timing. How long it takes: docs/reliability.md has the measured
run. Like every test, it runs on a vhost, a Redis database and a PostgreSQL database of its
run's own (tests/support/run.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from taskmaster.models import GateRun
from tests.conftest import require
from tests.support.lab import BROKERS, Lab, Result, Worker, finish
from tests.support.proxy import Proxy

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1500)]

CYCLES = int(os.environ.get("SOAK_CYCLES", "50"))
FAULT_RATE = 0.6  # share of cycles with a fault injected
FAULTS = ("gate-killed", "connection-cut", "worker-paused")
KINDS = {"interruptible": 0.4, "short": 0.35, "blocking": 0.25}  # the producer's mix
EARLY_ACK = {"short", "blocking"}
SEND_RATE = 1.0  # tasks per second, on average (exponential gaps)
GATE_TIMEOUT = (3.0, 5.0)  # each gate's --timeout, drawn in this range
DRAIN_BOUND = 150.0  # seconds for the workers to finish every task once the producer stops
# A paused worker cannot answer, so a clear verdict must come from a poll that started
# before the pause; one poll (ping's full reply timeout + the inspections) is under this.
PAUSE_RACE = 3.0


def soak_seed() -> int:
    value = os.environ.get("SOAK_SEED")
    return int(value) if value else random.SystemRandom().randrange(2**32)


# -- the producer -------------------------------------------------------------------------


def duration(kind: str, rng: random.Random) -> float:
    """How long a task sleeps: mostly short; some outlive a gate's deadline."""
    if kind == "interruptible" and rng.random() < 0.25:
        return round(rng.uniform(4, 10), 2)  # often still running when a deploy kills it
    if kind == "blocking" and rng.random() < 0.2:
        return round(rng.uniform(6, 12), 2)  # longer than a gate's deadline: it blocks
    return round(rng.uniform(0.2, 3), 2)


class Producer(threading.Thread):
    """Sends a steady mix of tasks for the whole soak and remembers every id it sent."""

    def __init__(
        self, broker_url: str, queues: list[str], ledger_url: str, prefix: str, seed: int
    ) -> None:
        super().__init__(name="soak-producer", daemon=True)
        # Its own app and connection: the test thread's remote control calls use lab.app,
        # and a gate's broker URL may point at the proxy; the producer always goes direct.
        self.app = Celery("soak-producer", broker=broker_url, set_as_current=False)
        self.queues = queues
        self.ledger_url = ledger_url
        self.prefix = prefix
        self.rng = random.Random(seed)
        self.sent: dict[str, str] = {}  # task id -> kind
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self) -> None:
        kinds, weights = list(KINDS), list(KINDS.values())
        while not self.halt.wait(self.rng.expovariate(SEND_RATE)):
            kind = self.rng.choices(kinds, weights)[0]
            # The first queue is everyone's, the second is one worker's only.
            queue = self.queues[1] if self.rng.random() < 0.2 else self.queues[0]
            args = (self.ledger_url, self.prefix, duration(kind, self.rng))
            try:
                result = self.app.send_task(
                    f"tests.support.soak_tasks.{kind}", args=args, queue=queue
                )
            except Exception as exc:  # not sent: not counted; reported in the figures
                self.errors.append(repr(exc))
                continue
            with self.lock:
                self.sent[str(result.id)] = kind

    def stop(self) -> dict[str, str]:
        self.halt.set()
        self.join(timeout=30)
        self.app.close()
        with self.lock:
            return dict(self.sent)


# -- the ledger -----------------------------------------------------------------------------


LEDGER_KEYS = ("started", "done", "redelivered")


@dataclass
class Ledger:
    client: redis.Redis
    prefix: str

    def counts(self, what: str) -> dict[str, int]:
        raw = self.client.hgetall(f"{self.prefix}:{what}")
        return {k.decode(): int(v) for k, v in raw.items()}

    def done_ids(self) -> set[str]:
        return {k.decode() for k in self.client.hkeys(f"{self.prefix}:done")}

    def clear(self) -> None:
        self.client.delete(*(f"{self.prefix}:{what}" for what in LEDGER_KEYS))


# -- one soak -------------------------------------------------------------------------------


@dataclass
class Cycle:
    n: int
    fault: str | None
    timeout: float
    injected: bool = False
    exit: int | None = None
    outcome: str = ""  # clear | blocked | killed | error | restore-incomplete | ...
    recovered: bool = False  # resume_consumers was needed (and exited 0)
    deployed: bool = False
    gate_seconds: float = 0.0  # from the gate's start to its end (or its kill)
    seconds: float = 0.0
    note: str = ""


@dataclass
class Soak:
    lab: Lab
    rng: random.Random
    seed: int
    log: Path
    expected: dict[str, list[str]] = field(default_factory=dict)  # node -> queues
    workers: dict[str, Worker] = field(default_factory=dict)  # short name -> live worker
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    cycles: list[Cycle] = field(default_factory=list)
    deploys: int = 0
    proxy: Proxy | None = None
    direct_url: str = ""

    def say(self, text: str, *, echo: Any = None) -> None:
        with self.log.open("a") as out:
            out.write(text + "\n")
        if echo is not None:
            echo(text)

    # -- workers --------------------------------------------------------------------------

    def layout(self) -> dict[str, tuple[list[str], int]]:
        """Each worker's queues and prefetch multiplier (prefork, concurrency 2).

        w1 prefetches up to 8 messages: early-acked tasks wait in its reserved list behind
        running acks_late ones, which only a gate that counts prefetched tasks sees.
        """
        q = self.lab.queue
        return {"w1": ([q], 4), "w2": ([q], 1), "w3": ([q, f"{q}-bulk"], 2)}

    def start_workers(self) -> None:
        started = [
            self.lab.start_worker(name, queues=queues, concurrency=2, prefetch=prefetch, wait=False)
            for name, (queues, prefetch) in self.layout().items()
        ]
        for (name, (queues, _)), worker in zip(self.layout().items(), started, strict=True):
            self.lab.wait_ready(worker)
            self.workers[name] = worker
            self.expected[worker.name] = sorted(queues)

    def deploy(self, n: int) -> None:
        """The deploy a clear verdict allows, at its harshest: SIGKILL, then fresh workers."""
        for name, worker in self.workers.items():
            worker.kill()
            # Keep the killed worker's log: the next one with this name starts a new file.
            with contextlib.suppress(OSError):
                worker.log.rename(worker.log.with_name(f"{name}.{n}.log"))
        self.workers.clear()
        self.start_workers()
        self.deploys += 1

    def consuming(self, timeout: float = 10.0) -> dict[str, list[str]]:
        """Wait until every worker consumes exactly its queues; return what was seen last."""
        deadline = time.monotonic() + timeout
        seen: dict[str, list[str]] = {}
        while time.monotonic() < deadline:
            seen = self.lab.active_queues(sorted(self.expected))
            if seen == self.expected:
                return seen
            time.sleep(0.3)
        return seen

    def drained(self) -> bool:
        seen = self.lab.active_queues(sorted(self.expected))
        return set(seen) == set(self.expected) and not any(seen.values())

    def busy_workers(self) -> list[str]:
        """The (short names of) workers running an early-acked task right now."""
        nodes = {worker.name: name for name, worker in self.workers.items()}
        inspect = self.lab.app.control.inspect(destination=sorted(nodes), timeout=2.0)
        active = inspect.active() or {}
        return sorted(
            nodes[node]
            for node, tasks in active.items()
            if node in nodes and any(t.get("acknowledged") for t in tasks or [])
        )

    # -- gates ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def gate_broker(self, url: str) -> Any:
        """Gates and resume_consumers reach the broker at ``url``; workers stay direct."""
        self.lab.broker_url = url
        try:
            yield
        finally:
            self.lab.broker_url = self.direct_url

    def wait_drained(self, gate: subprocess.Popen[str], timeout: float = 20.0) -> bool:
        """Until every worker is drained while the gate still runs (False: it ended first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and gate.poll() is None:
            if self.drained():
                return gate.poll() is None
            time.sleep(0.1)
        return False

    def anomaly(self, cycle: Cycle, what: str, *results: Result | None) -> None:
        entry: dict[str, Any] = {
            "seed": self.seed,
            "cycle": cycle.n,
            "fault": cycle.fault,
            "timeout": cycle.timeout,
            "what": what,
        }
        for i, result in enumerate(r for r in results if r is not None):
            entry[f"exit_{i}"] = result.code
            entry[f"output_{i}"] = result.text[-4000:]
        self.anomalies.append(entry)
        self.say(f"ANOMALY cycle {cycle.n}: {what}\n{json.dumps(entry, indent=2)}")

    def check_output(self, cycle: Cycle, result: Result) -> None:
        if "Traceback" in result.text:
            self.anomaly(cycle, "traceback in the command's output", result)

    def resume(self, cycle: Cycle, why: str) -> None:
        resumed = self.lab.manage("resume_consumers", timeout=120)
        self.say(f"cycle {cycle.n} resume_consumers ({why}): exit {resumed.code}\n{resumed.text}")
        self.check_output(cycle, resumed)
        cycle.recovered = True
        if resumed.code != 0:
            self.anomaly(cycle, f"resume_consumers after {why} exited {resumed.code}", resumed)

    def run_cycle(self, n: int, echo: Any) -> Cycle:
        rng = self.rng
        fault = rng.choice(FAULTS) if rng.random() < FAULT_RATE else None
        cycle = Cycle(n, fault, round(rng.uniform(*GATE_TIMEOUT), 1))
        # Draw every random number of the cycle up front: the schedule depends on the seed
        # only, not on which branch the cluster's timing takes.
        pause_before = rng.uniform(0.3, 1.5)  # consumers at work between two gates
        # From "every worker drained" to the fault: at once (mid-poll) or later in the wait.
        fault_delay = 0.0 if rng.random() < 0.4 else rng.uniform(0, cycle.timeout * 0.8)
        cut_for = rng.uniform(0.3, 3.0)
        victim = rng.choice(sorted(self.workers))
        deploy_delay = rng.uniform(0.5, 3.0)  # the deploy's own steps before the stop
        started = time.monotonic()
        time.sleep(pause_before)

        url = self.proxy.url if fault == "connection-cut" and self.proxy else self.direct_url
        with self.gate_broker(url):
            args = ("--interval", "1", "--timeout", str(cycle.timeout), "--json")
            gate = self.lab.start_gate(*args)
            gate_started = time.monotonic()
            result = self.inject(cycle, gate, fault_delay, cut_for, victim)
            cycle.gate_seconds = round(time.monotonic() - gate_started, 1)
            self.judge(cycle, result)

        if cycle.outcome == "clear":
            # The gate promised: no early-acked task runs or is prefetched, nobody consumes.
            if not self.drained():
                self.anomaly(cycle, "clear verdict but a worker still consumes", result)
            time.sleep(deploy_delay)
            self.deploy(n)
            cycle.deployed = True
        else:
            seen = self.consuming()
            if seen != self.expected:
                self.anomaly(
                    cycle, f"consumers not restored: {seen} (expected {self.expected})", result
                )
                self.resume(cycle, "consumers found missing")
                if self.consuming() != self.expected:
                    pytest.fail(f"seed {self.seed} cycle {n}: consumers cannot be restored")
        cycle.seconds = round(time.monotonic() - started, 1)
        self.cycles.append(cycle)
        self.say(
            f"cycle {n:3d}: fault={fault or '-':14s} injected={cycle.injected!s:5s} "
            f"timeout={cycle.timeout:3.1f} exit={cycle.exit} outcome={cycle.outcome}"
            f"{' resumed' if cycle.recovered else ''}{' deployed' if cycle.deployed else ''}"
            f" gate {cycle.gate_seconds:4.1f}s cycle {cycle.seconds:4.1f}s {cycle.note}",
            echo=echo,
        )
        return cycle

    def inject(
        self,
        cycle: Cycle,
        gate: subprocess.Popen[str],
        delay: float,
        cut_for: float,
        victim: str,
    ) -> Result | None:
        """Run the gate to its end with the cycle's fault; None if the gate was killed."""
        fault = cycle.fault
        if fault is None or not self.wait_drained(gate):
            return self.finish_gate(cycle, gate)
        time.sleep(delay)
        if gate.poll() is not None:  # it reached its verdict first: the fault missed
            return self.finish_gate(cycle, gate)
        cycle.injected = True
        if fault == "gate-killed":
            gate.kill()
            gate.wait()
            return None
        if fault == "connection-cut":
            assert self.proxy is not None
            self.proxy.cut()
            time.sleep(cut_for)
            self.proxy.restore()
            cycle.note = f"cut {cut_for:.1f}s"
            return self.finish_gate(cycle, gate)
        # Pause, preferably, a worker running an early-acked task: the pause hides that task
        # from the gate, and a gate that took silence for "idle" would clear and lose it.
        busy = self.busy_workers()
        if busy and victim not in busy:
            victim = busy[0]
        worker = self.workers[victim]
        worker.signal(signal.SIGSTOP)
        paused_at = time.time()
        try:
            result = self.finish_gate(cycle, gate)
        finally:
            worker.signal(signal.SIGCONT)
        cycle.note = f"paused {victim}"
        finished = report_of(result).get("finished_at")
        if result.code == 0 and finished:
            late = datetime.fromisoformat(finished).timestamp() - paused_at
            cycle.note += f", clear {late:.1f}s after the pause"
            cycle.injected = late > 0  # its record was closed before the pause: it missed
            if late > PAUSE_RACE:
                self.anomaly(cycle, f"clear {late:.1f}s after a worker was paused", result)
        return result

    def finish_gate(self, cycle: Cycle, gate: subprocess.Popen[str]) -> Result:
        try:
            return finish(gate, timeout=cycle.timeout + 120)
        except subprocess.TimeoutExpired:
            gate.kill()
            out, err = gate.communicate()
            result = Result(out, err, -9)
            self.anomaly(cycle, "the gate did not end within its timeout + 120 s", result)
            return result

    def judge(self, cycle: Cycle, result: Result | None) -> None:
        """Check the exit code against the fault and recover as a user would."""
        fault = cycle.fault
        if result is None:  # SIGKILLed mid-drain
            cycle.exit = -9
            run = GateRun.objects.order_by("-pk").first()
            if run is None or not run.is_open:
                # Its record was closed before the kill landed: it had reached a verdict.
                cycle.outcome = run.verdict if run else "none"
                cycle.note = "killed after its verdict (missed)"
                cycle.injected = False
                return
            cycle.outcome = "killed"
            second = self.lab.manage("prepare_deploy", "--interval", "1", "--timeout", "3")
            self.check_output(cycle, second)
            if second.code != 4 or "another drain is open" not in second.err:
                self.anomaly(cycle, f"gate after a killed gate exited {second.code}, not 4", second)
            self.resume(cycle, "a killed gate")
            return
        cycle.exit = result.code
        self.say(f"cycle {cycle.n} gate output:\n{result.err.rstrip()}")
        self.check_output(cycle, result)
        verdict = report_of(result).get("verdict", "?")
        cycle.outcome = {
            0: "clear",
            1: "blocked",
            3: "no-broker",
            5: "restore-incomplete",
            6: "error",
        }.get(result.code, f"exit-{result.code}")
        if result.code in (0, 1) and verdict != cycle.outcome:
            self.anomaly(cycle, f"exit {result.code} with verdict {verdict!r}", result)
        allowed = {
            None: {0, 1},
            "gate-killed": {0, 1},  # the fault missed: the gate ended first
            # 3: cut before the first cancel; 6: away past the deadline, back for the restore.
            "connection-cut": {0, 1, 3, 5, 6},
            "worker-paused": {0, 1, 5},  # 0 only if the pause raced the verdict (checked)
        }[fault]
        if not cycle.injected:
            allowed = {0, 1}
        if result.code not in allowed:
            self.anomaly(cycle, f"exit {result.code} (expected one of {sorted(allowed)})", result)
        if result.code == 5:
            self.resume(cycle, f"exit {result.code}")


def report_of(result: Result) -> dict[str, Any]:
    """The gate's --json report (empty if it printed none)."""
    with contextlib.suppress(ValueError):
        report = json.loads(result.out)
        if isinstance(report, dict):
            return report
    return {}


def drain_everything(
    lab: Lab, soak: Soak, ledger: Ledger, sent: dict[str, str], queues: list[str]
) -> None:
    """Wait until every sent task ran to its end, the queues are empty and workers idle."""
    deadline = time.monotonic() + DRAIN_BOUND
    while time.monotonic() < deadline:
        if set(sent) <= ledger.done_ids():
            break
        time.sleep(1)
    while time.monotonic() < deadline:
        if not any(queue_depths(lab, queues)[q][0] for q in queues) and idle(lab, soak):
            break
        time.sleep(1)
    time.sleep(1)  # a duplicate in flight would land now


def queue_depths(lab: Lab, queues: list[str]) -> dict[str, tuple[int, int | None]]:
    """Each queue's (messages ready, consumers) as the broker counts them. Redis keeps no
    consumer count (None); a message taken and not yet acknowledged is in its ``unacked``
    hash, counted as ready on the first queue so the final check sees it."""
    depths: dict[str, tuple[int, int | None]] = {}
    if lab.kind == "redis":  # type: ignore[attr-defined]
        client = redis.Redis.from_url(lab.broker_url)
        for q in queues:
            depths[q] = (int(client.llen(q)), None)
        unacked = int(client.hlen("unacked"))
        depths[queues[0]] = (depths[queues[0]][0] + unacked, None)
        return depths
    with lab.app.connection_for_write() as conn:
        channel = conn.default_channel
        for q in queues:
            ok = channel.queue_declare(queue=q, passive=True)
            depths[q] = (ok.message_count, ok.consumer_count)
    return depths


def idle(lab: Lab, soak: Soak) -> bool:
    nodes = sorted(soak.expected)
    inspect = lab.app.control.inspect(destination=nodes, timeout=2.0)
    active, reserved = inspect.active() or {}, inspect.reserved() or {}
    return all(node in active and not active[node] and not reserved.get(node) for node in nodes)


@pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)
def test_soak_gate_cycles_lose_no_task(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    require("redis")  # the ledger
    seed = soak_seed()
    rng = random.Random(seed)

    def echo(text: str) -> None:  # shown with or without -s: a soak's progress is its log
        with capsys.disabled():
            print(text, flush=True)

    started = time.monotonic()
    lab.settings = "tests.support.soak_settings"
    # The ledger: in the suite's own Redis database (conftest.py), under this test's tag.
    client = redis.Redis.from_url(BROKERS["redis"])
    ledger = Ledger(client, f"soak:{lab.tag}")
    ledger.clear()
    soak = Soak(lab, rng, seed, tmp_path / "soak.log", direct_url=lab.broker_url)
    kind = lab.kind  # type: ignore[attr-defined]
    cycles = CYCLES if kind == "rabbitmq" else max(1, CYCLES // 2)
    echo(
        f"\nsoak on {kind}: seed {seed} (SOAK_SEED={seed} to replay), {cycles} cycles, "
        f"log {soak.log}"
    )
    queues = [lab.queue, f"{lab.queue}-bulk"]
    soak.start_workers()
    soak.proxy = Proxy(lab.broker_url)
    producer = Producer(lab.broker_url, queues, BROKERS["redis"], ledger.prefix, seed + 1)
    producer.start()
    sent: dict[str, str] = {}
    drain_seconds = 0.0
    try:
        # A cycle whose fault missed is run again (a fresh draw), so the faults are counted
        # in cycles where they landed; bounded, so a fault that never lands fails below.
        counted = 0
        for n in range(1, 2 * cycles + 1):
            cycle = soak.run_cycle(n, echo)
            counted += cycle.fault is None or cycle.injected
            if counted == cycles:
                break
        sent = producer.stop()
        drain_started = time.monotonic()
        drain_everything(lab, soak, ledger, sent, queues)
        drain_seconds = round(time.monotonic() - drain_started, 1)
        final_queues = soak.consuming(timeout=15)
        depths = queue_depths(lab, queues)
    finally:
        producer.halt.set()
        soak.proxy.close()
        for worker in soak.workers.values():  # never leave a paused worker behind
            with contextlib.suppress(OSError):
                worker.signal(signal.SIGCONT)

    started_counts = ledger.counts("started")
    done = ledger.counts("done")
    redelivered = ledger.counts("redelivered")
    ledger.clear()
    lost = sorted(t for t in sent if done.get(t, 0) == 0)
    twice = sorted(t for t, kind in sent.items() if kind in EARLY_ACK and done.get(t, 0) > 1)
    late = [t for t, kind in sent.items() if kind == "interruptible"]
    figures = {
        "seed": seed,
        "cycles": len(soak.cycles),
        "cycles_counted": sum(c.fault is None or c.injected for c in soak.cycles),
        "faults_drawn": dict(Counter(c.fault or "none" for c in soak.cycles)),
        "faults_injected": dict(Counter(c.fault for c in soak.cycles if c.injected)),
        "outcomes": dict(Counter(c.outcome for c in soak.cycles)),
        "outcomes_by_fault": {
            fault: dict(Counter(c.outcome for c in soak.cycles if (c.fault or "none") == fault))
            for fault in ("none", *FAULTS)
        },
        "exit_codes": dict(Counter(str(c.exit) for c in soak.cycles)),
        "resume_consumers_runs": sum(c.recovered for c in soak.cycles),
        "mean_cycle_seconds_by_fault": {
            fault: round(sum(c.seconds for c in cs) / len(cs), 1)
            for fault in ("none", *FAULTS)
            if (cs := [c for c in soak.cycles if (c.fault or "none") == fault])
        },
        "deploys": soak.deploys,
        "tasks_sent": len(sent),
        "tasks_sent_by_kind": dict(Counter(sent.values())),
        "send_errors": len(producer.errors),
        "tasks_completed": sum(1 for t in sent if done.get(t, 0) > 0),
        "tasks_lost": len(lost),
        "early_ack_executed_twice": len(twice),
        "acks_late_started_again": sum(max(0, started_counts.get(t, 0) - 1) for t in late),
        "acks_late_completed_twice": sum(1 for t in late if done.get(t, 0) > 1),
        "redelivered_flagged": sum(redelivered.values()),
        "anomalies": len(soak.anomalies),
        "final_drain_seconds": drain_seconds,
        "wall_seconds": round(time.monotonic() - started, 1),
    }
    for key, value in figures.items():
        record_property(f"soak_{key}", value)
    echo("soak figures: " + json.dumps(figures, indent=2))
    if path := os.environ.get("SOAK_FIGURES"):
        detail = {**figures, "anomaly_list": soak.anomalies, "cycle_list": soak.cycles}
        Path(path).write_text(json.dumps(detail, indent=2, default=lambda c: c.__dict__))

    where = f"seed {seed} (replay with SOAK_SEED={seed}); log {soak.log}"
    assert not producer.errors, f"{where}: tasks not sent: {producer.errors[:5]}"
    assert len(sent) >= cycles and set(sent.values()) == set(KINDS), f"{where}: sent {figures}"
    landed = figures["faults_injected"]
    assert set(landed) == set(FAULTS), f"{where}: faults that never landed: " + ", ".join(
        sorted(set(FAULTS) - set(landed))
    )
    assert not soak.anomalies, f"{where}: gate anomalies:\n" + json.dumps(soak.anomalies, indent=2)
    assert not lost, f"{where}: {len(lost)} task(s) sent and never executed: " + ", ".join(
        f"{t} ({sent[t]}, started {started_counts.get(t, 0)}x)" for t in lost[:20]
    )
    assert not twice, f"{where}: early-acked task(s) executed twice: {twice[:20]}"
    assert final_queues == soak.expected, f"{where}: final consumers {final_queues}"
    consumers = (3, 1) if kind == "rabbitmq" else (None, None)
    expected = {lab.queue: (0, consumers[0]), f"{lab.queue}-bulk": (0, consumers[1])}
    assert depths == expected, f"{where}: {depths}"
