"""Three rules of a drain, against real brokers, real ``celery worker`` processes and Postgres.

- docs/usage.md, ``sync_task_registry``: "``prepare_deploy`` also runs it at the start of every
  gate (not for a dry run)": tasks no longer registered are retired, registered ones created or
  revived, notes never touched; a dry run writes nothing.
- docs/gate.md, "The clear verdict and the lease": the lease a drained worker holds "lasts three
  intervals (at least a minute)", max(60 s, 3 x interval) in docs/reliability.md, promise 7:
  asked of the workers (``taskmaster_lease_status``) and of the run's record (``lease_until``).
- docs/gate.md, step 4 ("a consumer that came back (a restarted worker …) is cancelled again")
  and docs/reliability.md, promise 5: a worker a supervisor restarts mid-drain comes back
  consuming its configured queues; the gate drains it again, leases it, and restores it.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from datetime import timedelta
from typing import IO, Any

import pytest
from django.utils import timezone

from taskmaster.models import GateRun, TaskPolicy
from tests.support.lab import Lab, Result, drained, wait_for

FAST = ("--interval", "1")
STALE = "project.tasks.removed_last_month"  # a row the app no longer registers
REGISTERED = {  # what the demo app registers, and how the registry classifies it
    "project.tasks.generate_report": "blocking",
    "project.tasks.resize_images": "interruptible",
    "project.tasks.send_receipt": "short",
}


class Lines:
    """A gate's plain output, read by a thread as it comes, so a test can wait for a line
    without blocking on a pipe (and the gate never blocks on a full one)."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def wait(self, marker: str, *, since: int = 0, timeout: float = 30) -> int:
        """The number of lines read up to the first one from ``since`` that holds ``marker``."""

        def found() -> int | None:
            lines = list(self.lines)
            return next((i + 1 for i in range(since, len(lines)) if marker in lines[i]), None)

        try:
            return int(wait_for(found, timeout=timeout))
        except TimeoutError:
            raise AssertionError(f"no {marker!r} in the gate's output:\n{self.text}") from None

    @property
    def text(self) -> str:
        return "".join(self.lines)


def end(gate: subprocess.Popen[str], lines: Lines, signum: int) -> Result:
    """Stop a gate whose output ``lines`` reads (stderr merged into it)."""
    gate.send_signal(signum)
    gate.wait(timeout=60)
    lines.thread.join(timeout=10)
    return Result(lines.text, "", gate.returncode)


def registry_rows() -> dict[str, tuple[object, ...]]:
    """Everything a sync could write on each row."""
    return {
        p.name: (p.classification, p.acks_late, p.first_seen, p.last_seen, p.retired_at, p.notes)
        for p in TaskPolicy.objects.all()
    }


def policy(name: str, *, retired: bool, notes: str) -> TaskPolicy:
    long_ago = timezone.now() - timedelta(days=40)
    return TaskPolicy.objects.create(
        name=name,
        classification="blocking",
        acks_late=False,
        reject_on_worker_lost=False,
        first_seen=long_ago,
        last_seen=long_ago,
        retired_at=long_ago if retired else None,
        notes=notes,
    )


# -- the task registry: synced at the start of every gate, never by a dry run ----------------


def test_every_gate_syncs_the_task_registry_first_and_a_dry_run_never(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1", seconds=60)  # its task keeps the real gate polling
    before = lab.active_queues()
    stale = policy(STALE, retired=False, notes="billing: removed in 4.2")
    # Registered again (a task that was removed, then brought back): a sync revives it.
    back = policy("project.tasks.resize_images", retired=True, notes="owner: media team")
    seeded = registry_rows()

    dry = lab.manage("prepare_deploy", "--dry-run")

    assert dry.code == 1, dry.text
    assert "held: project.tasks.generate_report" in dry.out  # it looked, with the registry
    assert "Traceback" not in dry.text
    assert registry_rows() == seeded  # nothing created, retired, revived or touched
    assert not GateRun.objects.exists()

    gate = lab.start_gate(*FAST, "--timeout", "120", stderr=subprocess.STDOUT)
    out = Lines(gate.stdout)
    wait_for(lambda: drained(lab, w1.name))
    rows = {p.name: p for p in TaskPolicy.objects.all()}
    # The gate is still draining (the blocking task runs on), and the registry is synced
    # already: at the start of the gate, not at its verdict.
    assert gate.poll() is None
    assert set(rows) == {STALE, *REGISTERED}
    assert {name: rows[name].classification for name in REGISTERED} == REGISTERED
    assert all(rows[name].retired_at is None for name in REGISTERED)
    assert rows[STALE].retired_at is not None
    assert rows[STALE].last_seen == stale.last_seen  # the last sync that saw it
    assert (rows[STALE].notes, rows[back.name].notes) == (stale.notes, back.notes)
    assert rows[back.name].first_seen == back.first_seen
    assert rows[back.name].last_seen > back.last_seen

    result = end(gate, out, signal.SIGINT)
    assert result.code == 130, result.text
    assert "Traceback" not in result.text
    assert lab.active_queues() == before

    # Every gate, not only the first: a task retired since then is retired by the next one,
    # blocked verdict or not.
    renamed = policy("project.tasks.renamed_since", retired=False, notes="")
    second = lab.manage("prepare_deploy", *FAST, "--timeout", "2")

    assert second.code == 1, second.text
    assert TaskPolicy.objects.get(pk=renamed.pk).retired_at is not None
    assert set(TaskPolicy.objects.registered().values_list("name", flat=True)) == set(REGISTERED)
    assert lab.active_queues() == before


# -- the lease: three intervals, at least a minute ---------------------------------------------


@pytest.mark.parametrize(
    ("interval", "floor", "lease"),
    [("1", 50, 60), ("25", 60, 75)],
    ids=["a-minute-at-least", "three-intervals-above-20s"],
)
def test_a_drained_worker_holds_its_lease_for_three_intervals_at_least_a_minute(
    lab: Lab, interval: str, floor: float, lease: float
) -> None:
    # Its task keeps the gate draining, renewing the lease each poll.
    w1 = lab.start_busy_worker("w1", queues=[lab.queue, f"{lab.queue}-x"], seconds=120)
    before = lab.active_queues()

    gate = lab.start_gate("--interval", interval, "--timeout", "60", stderr=subprocess.STDOUT)
    out = Lines(gate.stdout)
    wait_for(lambda: drained(lab, w1.name))
    run = GateRun.objects.get()
    seen: list[dict[str, Any]] = []

    def lease_status() -> dict[str, Any]:
        status = lab.leases([w1.name])[w1.name]
        seen.append(status)
        return status

    # Right after a grant the worker has (nearly) the whole lease left; it counts down until the
    # next poll renews it. A lease of the minimum (60 s) is never above 60 s, one of 3 s never
    # above 3 s: waiting for a reading above ``floor`` tells the rule apart.
    try:
        wait_for(lambda: lease_status()["expires_in"] > floor, timeout=30)
    except TimeoutError:
        pytest.fail(f"the lease never had more than {floor} s left: {seen}")
    assert all(s["run"] == run.pk for s in seen)
    assert all(0 < s["expires_in"] <= lease for s in seen), seen
    assert seen[-1]["queues"] == sorted([lab.queue, f"{lab.queue}-x"])  # what it gives back

    # The run's record says the same (what `resume_consumers` and a second gate read).
    def recorded_left() -> float:
        until = GateRun.objects.get(pk=run.pk).lease_until
        return (until - timezone.now()).total_seconds() if until else 0.0

    try:
        left = wait_for(lambda: (s := recorded_left()) > floor and s, timeout=30)
    except TimeoutError:
        pytest.fail(f"the run records a lease with {recorded_left()} s left, not over {floor} s")
    assert left <= lease
    assert gate.poll() is None  # all of it while the gate drains

    result = end(gate, out, signal.SIGINT)

    assert result.code == 130, result.text
    assert "Traceback" not in result.text
    assert lab.active_queues() == before
    assert lab.leases([w1.name]) == {w1.name: {}}  # released, not left to run out
    run.refresh_from_db()
    assert (run.verdict, run.is_open, run.lease_until) == ("interrupted", False, None)
    assert run.interval == float(interval)


# -- a worker restarted mid-drain ---------------------------------------------------------------


@pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)
def test_a_worker_restarted_mid_drain_is_drained_again_then_restored(lab: Lab) -> None:
    w1 = lab.start_busy_worker("w1", seconds=120)  # its task keeps the gate in its poll loop
    w2_queues = [f"{lab.queue}-2", f"{lab.queue}-3"]
    w2 = lab.start_worker("w2", queues=w2_queues)
    before = lab.active_queues()
    gate = lab.start_gate(*FAST, "--timeout", "120", stderr=subprocess.STDOUT)
    out = Lines(gate.stdout)
    out.wait(f"draining {w2.name}")
    wait_for(lambda: drained(lab, w1.name, w2.name))
    run = GateRun.objects.get()

    # A supervisor restarts w2: a warm shutdown, then a new process with the same node name
    # and the same configured queues, which it consumes from the start.
    w2.signal(signal.SIGTERM)
    w2.process.wait(timeout=30)
    said = out.wait(f"{w2.name} shut down cleanly")
    restarted = lab.start_worker("w2", queues=w2_queues)
    assert restarted.name == w2.name

    # The gate cancels its consumers again, and holds the new process under its lease. Its
    # poll says so: two workers again, and the running task the only blocker (the restarted
    # worker is neither a "consuming" one nor a "silent" one any more).
    try:
        wait_for(lambda: drained(lab, restarted.name), timeout=30)
    except TimeoutError:
        pytest.fail(f"the restarted {restarted.name} was not drained again:\n{out.text}")
    out.wait("poll: 2 worker(s), 1 blocker(s)", since=said)
    assert gate.poll() is None
    lease = lab.leases([restarted.name])[restarted.name]
    assert (lease["run"], lease["queues"]) == (run.pk, sorted(w2_queues))
    assert drained(lab, w1.name, restarted.name)  # still, a poll or more later

    result = end(gate, out, signal.SIGINT)

    assert result.code == 130, result.text
    assert "Traceback" not in result.text
    assert lab.active_queues() == before  # the restarted worker too: it is not "gone"
    run.refresh_from_db()
    assert (run.verdict, run.is_open) == ("interrupted", False)
    assert run.report["gone"] == []
    assert run.report["restored"] is True
    assert {w["hostname"]: w["queues"] for w in run.report["workers"]} == before
