"""The fleet simulator (benchmarks/fleet) answers as a real worker does, and a gate cannot tell.

``benchmarks/fleet_benchmark.py`` measures the gate against a thousand simulated workers; its
figures mean something only if a simulated worker is, to the gate and to the broker, a worker.
So one real ``celery worker`` and one simulated worker, consuming the same queue in the same
state, are asked every command the gate sends, command by command, and their replies must be
the same but for the node name and the seconds a lease has left; the broker must count both
alike (RabbitMQ: a consumer each, a control queue held open each; Redis: a named connection
each, listening to remote control). Then a real gate drains a fleet of simulated workers,
clears, and ``resume_consumers`` restores them.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from benchmarks.fleet import Fleet
from taskmaster.cluster.consumers import broker_counter
from taskmaster.cluster.control import Cluster
from tests.support.lab import Lab, drained, wait_for

BOTH = pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)

# The simulator stands in for the Celery the benchmarks run with (.venv's, 5.7); the compat
# virtualenvs leave it out (Makefile, COMPAT_TESTS).
pytestmark = pytest.mark.fleet


def simulated(lab: Lab, count: int, **options: Any) -> Fleet:
    return Fleet(count, lab.env, queues=[lab.queue], name=f"sim{lab.tag}-{{n:02d}}@lab", **options)


class Recording(Cluster):
    """The gate's own control client, keeping each reply it gets (the gate drops some)."""

    replies: list[tuple[str, Any]]

    def _broadcast(self, command: str, workers: Any = None, **kwargs: Any) -> Any:
        self.replies = super()._broadcast(command, workers, **kwargs)
        return self.replies


def normalized(reply: Any, node: str) -> Any:
    """What may differ between two workers: the node name, the seconds a lease has left."""
    if isinstance(reply, dict):
        return {
            key: "<seconds>" if key == "expires_in" else normalized(value, node)
            for key, value in reply.items()
        }
    if isinstance(reply, list):
        return [normalized(item, node) for item in reply]
    if isinstance(reply, str):
        return reply.replace(node, "<node>")
    return reply


class Pair:
    """A real worker and a simulated one, asked the same thing."""

    def __init__(self, lab: Lab, real: str, sim: str) -> None:
        self.lab, self.real, self.sim = lab, real, sim

    def ask(self, command: str, **arguments: Any) -> Any:
        """Both replies, normalized; fails unless they are the same."""
        replies = self.lab.app.control.broadcast(
            command,
            arguments=arguments,
            destination=[self.real, self.sim],
            limit=2,
            reply=True,
            timeout=5.0,
        )
        got = {node: reply for answer in replies for node, reply in answer.items()}
        assert set(got) == {self.real, self.sim}, f"{command}: {got}"
        real, sim = normalized(got[self.real], self.real), normalized(got[self.sim], self.sim)
        assert sim == real, f"{command}({arguments}): simulated {sim!r} != real {real!r}"
        if isinstance(got[self.real], dict) and "expires_in" in got[self.real]:
            assert abs(got[self.real]["expires_in"] - got[self.sim]["expires_in"]) < 5
        return got[self.real]

    def through_the_gate(self, call: str, *args: Any) -> None:
        """A call of the gate's control client (addressed to a list of workers), to each in
        turn; their replies must be the same."""
        cluster = Recording(self.lab.app, reply_timeout=5.0)
        with cluster.connected():
            got = {}
            for node in (self.real, self.sim):
                getattr(cluster, call)([node], *args)
                got[node] = normalized(dict(cluster.replies)[node], node)
        assert got[self.sim] == got[self.real], got

    def consuming(self) -> dict[str, list[str]]:
        return self.lab.active_queues([self.real, self.sim])


@BOTH
def test_a_simulated_worker_answers_every_command_as_a_real_worker(lab: Lab) -> None:
    real = lab.start_worker("real", pool="solo", concurrency=1).name
    with simulated(lab, 1) as fleet:
        pair = Pair(lab, real, fleet.names[0])

        # Discovery, and the look at an idle worker, before any drain.
        assert pair.ask("ping") == {"ok": "pong"}
        declarations = pair.ask("active_queues")
        assert [q["name"] for q in declarations] == [lab.queue]
        assert pair.ask("active", safe=True) == []
        assert pair.ask("reserved", safe=True) == []
        assert pair.ask("scheduled", safe=True) == []
        assert pair.ask("query_task", ids=[str(uuid.uuid4())]) == {}
        assert pair.ask("taskmaster_lease_status") == {}
        assert pair.ask("taskmaster_look")["lease"] == {}
        count(lab, pair, consumers=2)

        # The drain: the lease, then the cancel (answered before it is done), verified.
        held = pair.ask("taskmaster_lease", run=7, seconds=120.0, gate="fleet test")
        assert held["ok"] == "lease of gate run #7 held for 120 s"
        assert held["queues"] == [lab.queue]
        look = pair.ask("taskmaster_look", run=7, seconds=120.0, gate="fleet test")
        assert look["queues"] == declarations and look["lease"]["run"] == 7
        assert pair.ask("cancel_consumer", queue=lab.queue) == {
            "ok": f"no longer consuming from {lab.queue}"
        }
        wait_for(lambda: drained(lab, real, pair.sim))
        assert pair.ask("active_queues") == []
        assert pair.ask("taskmaster_look", run=7, seconds=120.0, gate="fleet test")["queues"] == []
        assert pair.ask("taskmaster_lease_status")["queues"] == [lab.queue]
        count(lab, pair, consumers=0)

        # The way back: a release of another run keeps the lease; the gate's run's releases it.
        kept = pair.ask("taskmaster_release", run=8)
        assert kept["ok"] == "the lease belongs to gate run #7: kept"
        released = pair.ask("taskmaster_release", run=7)
        assert released == {"ok": "lease of gate run #7 released", "queues": [lab.queue]}
        wait_for(lambda: pair.consuming() == {real: [lab.queue], pair.sim: [lab.queue]})
        assert pair.ask("active_queues") == declarations
        assert pair.ask("taskmaster_release") == {"ok": "no lease held"}

        # A restore without a lease: add_consumer with the declaration in full, as the gate
        # sends it, for a queue the worker knew and for one it did not.
        pair.ask("cancel_consumer", queue=lab.queue)
        wait_for(lambda: drained(lab, real, pair.sim))
        extra = {**declarations[0], "name": f"{lab.queue}-extra", "routing_key": "extra"}
        for declaration in (declarations[0], extra):
            pair.through_the_gate("add", declaration)
        both = [lab.queue, extra["name"]]
        wait_for(lambda: pair.consuming() == {real: both, pair.sim: both})
        assert [q["name"] for q in pair.ask("active_queues")] == both

        # Whatever the gate may send that a worker does not know: the same error.
        assert "error" in pair.ask("taskmaster_no_such_command")


def count(lab: Lab, pair: Pair, *, consumers: int) -> None:
    """What the gate's count of consumers says of the two: the same (on RabbitMQ, with
    ``consumers`` consumers of the queue between them)."""
    counter = broker_counter(lab.app)
    with lab.app.connection_for_write() as connection:
        seen = counter.count(connection, [lab.queue], [pair.real, pair.sim], heard=())
    assert set(seen.alive) == {pair.real, pair.sim}, seen
    real, sim = seen.alive[pair.real], seen.alive[pair.sim]
    assert (sim.listens, sim.queues) == (real.listens, real.queues)
    if lab.kind == "redis":  # type: ignore[attr-defined]
        assert seen.listeners == 2  # one subscription to remote control each
    else:
        assert seen.consumers == {lab.queue: consumers}


@BOTH
def test_a_gate_drains_a_simulated_fleet_and_resume_restores_it(lab: Lab) -> None:
    with simulated(lab, 8, per_process=4) as fleet:
        names = fleet.names
        gate = lab.manage("prepare_deploy", "--json", "--hold", "120")
        report = gate.report()
        assert gate.code == 0, gate.text
        assert report["verdict"] == "clear"
        assert sorted(w["hostname"] for w in report["workers"]) == names
        assert report["broker_count"]["silent"] == []
        assert report["broker_count"]["answered"] == 8
        assert drained(lab, *names)
        leases = lab.leases(names)
        assert sorted(leases) == names
        assert {lease["run"] for lease in leases.values()} == {report["run_id"]}

        resumed = lab.manage("resume_consumers")
        assert resumed.code == 0, resumed.text
        assert lab.active_queues(names) == {name: [lab.queue] for name in names}


def test_a_simulated_worker_without_taskmaster_answers_as_an_older_image(lab: Lab) -> None:
    """An image without Taskmaster: Celery's commands only. The gate drains it without a
    lease, and the restore puts it back with add_consumer."""
    old = lab.start_worker("old", pool="solo", concurrency=1, old_image=True).name
    with simulated(lab, 1, taskmaster=False) as fleet:
        pair = Pair(lab, old, fleet.names[0])
        for command in ("taskmaster_lease_status", "taskmaster_look", "taskmaster_release"):
            assert "error" in pair.ask(command)
        assert [q["name"] for q in pair.ask("active_queues")] == [lab.queue]

        gate = lab.manage("prepare_deploy", "--json", "--hold", "120")
        report = gate.report()
        assert gate.code == 0, gate.text
        assert sorted(w["hostname"] for w in report["workers"]) == sorted([old, pair.sim])
        assert not any(w["lease"] for w in report["workers"])
        assert drained(lab, old, pair.sim)

        resumed = lab.manage("resume_consumers")
        assert resumed.code == 0, resumed.text
        assert pair.consuming() == {old: [lab.queue], pair.sim: [lab.queue]}


def shape(value: Any) -> Any:
    """The keys and the types of a reply, not its values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_a_simulated_worker_holds_a_task_as_a_worker_holds_one(lab: Lab) -> None:
    """A task delivered to a simulated worker is held, never run: prefetched (``reserved``),
    or ``scheduled`` with its ETA, as a real worker shows it until it runs it."""
    real = lab.start_busy_worker("real", concurrency=1).name  # runs one task, answers
    with Fleet(1, lab.env, queues=[f"{lab.queue}-sim"], name=f"sim{lab.tag}-{{n}}@lab") as fleet:
        sim = fleet.names[0]
        for queue in (lab.queue, f"{lab.queue}-sim"):
            lab.send("generate_report", 1, queue=queue, countdown=600)
            lab.send("generate_report", 1, "acme", queue=queue)

        def held(node: str) -> tuple[list[Any], list[Any]]:
            inspect = lab.app.control.inspect(destination=[node], timeout=2.0)
            return (inspect.reserved() or {}).get(node, []), (inspect.scheduled() or {}).get(
                node, []
            )

        wait_for(lambda: all(len(tasks) == 1 for node in (real, sim) for tasks in held(node)))
        (real_reserved,), (real_scheduled,) = held(real)
        (sim_reserved,), (sim_scheduled,) = held(sim)
        assert shape(sim_reserved) == shape(real_reserved)
        assert normalized(sim_reserved, sim) == {
            **normalized(real_reserved, real),
            "id": sim_reserved["id"],
            "delivery_info": sim_reserved["delivery_info"],  # its own queue: shape only
        }
        assert shape(sim_scheduled) == shape(real_scheduled)
        assert sim_scheduled["priority"] == real_scheduled["priority"]

        found = {}
        for node, task in ((real, real_reserved), (sim, sim_reserved)):
            replies = lab.app.control.inspect(destination=[node], timeout=2.0).query_task(
                task["id"]
            )
            found[node] = replies[node][task["id"]]
        assert found[sim][0] == found[real][0] == "reserved"
        assert shape(found[sim]) == shape(found[real])
