"""A restored worker that then loses its broker connection: does it still consume every
queue the restore gave back? (docs/reliability.md, "What it cannot promise")

A worker that runs ``taskmaster.tasks`` is restored through its drain lease, which re-selects
each queue: it keeps them through a reconnect on every Celery CI runs (5.5, 5.6 and 5.7), on
RabbitMQ and Redis. One without it (an image without Taskmaster installed) is restored by
Celery's ``add_consumer``, which before 5.7 does not select a queue the worker knows already
(celery/celery#7733): on Celery 5.5 and 5.6 it consumes them until the reconnect and then none
of them, which the gate says when it restores such a worker.
"""

from __future__ import annotations

import json
import subprocess
from urllib.parse import unquote, urlsplit

import celery
import pytest
import redis

from tests.support.lab import Lab, wait_for

BOTH = pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)


def close_broker_connections(lab: Lab) -> int:
    """Close every connection the broker holds in the lab's vhost or database, as a broker
    restart or a network blip would; the workers reconnect by themselves."""
    parts = urlsplit(lab.broker_url)
    if parts.scheme.startswith("redis"):
        client = redis.Redis(host=parts.hostname, port=parts.port or 6379)
        db, me = int(parts.path.strip("/") or 0), client.client_id()
        ids = [c["id"] for c in client.client_list() if int(c["db"]) == db and int(c["id"]) != me]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)
    vhost = unquote(parts.path[1:]) or "/"
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "vhost"], capture_output=True, text=True
    ).stdout.splitlines()
    subprocess.run(
        ["rabbitmqctl", "-q", "close_all_connections", "-p", vhost, "taskmaster test"], check=True
    )
    return sum(1 for line in listed[1:] if line == vhost)


def restored_then_reconnected(lab: Lab, *, old_image: bool) -> tuple[list[str], list[str]]:
    worker = lab.start_worker("w1", queues=[lab.queue, f"{lab.queue}-b"], old_image=old_image)
    before = lab.active_queues([worker.name])[worker.name]
    lab.send("generate_report", 60)
    lab.wait_active(worker.name)
    blocked = lab.manage("prepare_deploy", "--interval", "1", "--timeout", "3", "--json")
    assert blocked.code == 1, blocked.text  # blocked: every consumer restored and verified
    # Restored through its lease, or by add_consumer when it has none, and then said so.
    report = json.loads(blocked.out)
    assert {w["hostname"]: w["lease"] for w in report["workers"]} == {worker.name: not old_image}
    warned = [n for n in report["notes"] if "celery/celery#7733" in n]
    assert len(warned) == (1 if old_image else 0), report["notes"]
    assert lab.active_queues([worker.name])[worker.name] == before

    assert close_broker_connections(lab) > 0
    lab.app.close()  # the test's own connections went too: it opens new ones
    wait_for(lambda: reconnected(worker.logs()), timeout=60)
    wait_for(lambda: answers(lab, worker.name), timeout=60)
    return before, lab.active_queues([worker.name])[worker.name]


def reconnected(log: str) -> bool:
    """The worker lost its connection and made a new one (Celery logs both)."""
    lost, _, after = log.rpartition("Connection to broker lost")
    return bool(lost) and "Connected to" in after


def answers(lab: Lab, node: str) -> bool:
    """The test's own client lost its connection too: the first calls after may fail."""
    try:
        return lab.ping(node)
    except Exception:
        return False


@BOTH
def test_a_worker_with_taskmaster_tasks_keeps_its_restored_queues_through_a_reconnect(
    lab: Lab,
) -> None:
    before, after = restored_then_reconnected(lab, old_image=False)

    assert after == before


@BOTH
def test_a_worker_without_taskmaster_tasks_keeps_them_from_celery_5_7_only(lab: Lab) -> None:
    before, after = restored_then_reconnected(lab, old_image=True)

    if celery.VERSION >= (5, 7):
        assert after == before
    else:  # restored by add_consumer, never selected: the reconnect consumes none of them
        assert after == [], (before, after)
