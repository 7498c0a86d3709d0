"""Workers a gate cannot ask, against real brokers and real ``celery worker`` processes: a
``solo`` pool busy with a task, a worker with remote control off, a gevent pool stuck in code
that does not yield. None of them answers; the broker sees each, and so must the gate.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from taskmaster.cluster.rabbitmq import ManagementAPI
from taskmaster.models import Worker as KnownWorker
from tests.conftest import REQUIRE_SERVICES
from tests.support.lab import Lab, Result, Worker, wait_for

FAST = ("--interval", "1")
BOTH = pytest.mark.parametrize("lab", ["rabbitmq", "redis"], indirect=True)
MANAGEMENT_URL = os.environ.get(
    "TEST_RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672"
)


# The app declares the test's queue, as a project declares the queues its workers consume.
GATE = "tests.support.silent_settings"


def gate(lab: Lab, *args: str, **given: Any) -> Result:
    return lab.manage("prepare_deploy", *args, **{"settings": GATE, **given})


def with_management() -> dict[str, Any]:
    """Gate settings with RabbitMQ's management API (``.ci/run`` enables the plugin)."""
    import urllib.request

    try:
        urllib.request.urlopen(MANAGEMENT_URL.replace("guest:guest@", ""), timeout=2).close()
    except OSError as exc:
        message = f"RabbitMQ's management API is not reachable ({exc})"
        if REQUIRE_SERVICES:
            pytest.fail(f"{message} (CI requires every service)")
        pytest.skip(message)
    settings = {"CELERY_APP": "project.celery.app", "RABBITMQ_MANAGEMENT_URL": MANAGEMENT_URL}
    return {"env": {"TEST_TASKMASTER": json.dumps(settings)}}


def listed_consumer(lab: Lab) -> bool:
    """Whether the management API lists a consumer of the lab's queue yet (the solo's)."""
    vhost = unquote(urlsplit(lab.broker_url).path[1:]) or "/"
    listing = ManagementAPI(MANAGEMENT_URL, vhost).listing()
    return any(c.queue == lab.queue for c in listing.consumers)


def busy_solo(lab: Lab, name: str = "solo", seconds: float = 120) -> Worker:
    """A ``solo`` worker running an early-ack task: it answers nothing until the task ends."""
    solo = lab.start_worker(name, pool="solo", concurrency=1, queues=[lab.queue])
    task_id = lab.send("generate_report", seconds)
    wait_for(lambda: task_id in solo.logs())  # "received": the solo pool runs it at once
    return solo


def silent(result: Result) -> list[tuple[str, str]]:
    report = result.report()
    return [(b["worker"], b["state"]) for b in report["blockers"] if b["state"] == "silent"]


def test_busy_solo_worker_no_gate_has_seen_blocks_until_the_deadline_rabbitmq(lab: Lab) -> None:
    pre = lab.start_worker("pre", queues=[f"{lab.queue}-2"])
    busy_solo(lab)

    result = gate(lab, *FAST, "--timeout", "5", "--json")

    assert result.code == 1, result.text
    # AMQP counts the consumer but cannot name it (no gate has heard this worker).
    assert silent(result) == [(f"unnamed consumer of {lab.queue}", "silent")]
    report = result.report()
    assert report["broker_count"]["consumers"][lab.queue] == 1
    assert report["broker_count"]["answered"] == 1
    assert report["restored"] is True
    assert "Safe to stop" not in result.text
    assert lab.active_queues([pre.name]) == {pre.name: [f"{lab.queue}-2"]}


@pytest.mark.parametrize("lab", ["redis"], indirect=True)
def test_busy_solo_worker_no_gate_has_seen_is_named_on_redis(lab: Lab) -> None:
    pre = lab.start_worker("pre", queues=[f"{lab.queue}-2"])
    solo = busy_solo(lab)

    result = gate(lab, *FAST, "--timeout", "5", "--json")

    assert result.code == 1, result.text
    # Its connections carry its name (taskmaster.tasks), and it listens to remote control.
    assert silent(result) == [(solo.name, "silent")]
    count = result.report()["broker_count"]
    assert (count["listeners"], count["answered"], count["silent"]) == (2, 1, [solo.name])
    assert lab.active_queues([pre.name]) == {pre.name: [f"{lab.queue}-2"]}


def test_the_management_api_names_a_busy_solo_worker_no_gate_has_seen(lab: Lab) -> None:
    lab.start_worker("pre", queues=[f"{lab.queue}-2"])
    solo = busy_solo(lab)

    result = gate(lab, *FAST, "--timeout", "4", "--json", **with_management())

    assert result.code == 1, result.text
    assert silent(result) == [(solo.name, "silent")]  # by name, and its consumer not twice
    (blocker,) = result.report()["blockers"]
    assert "its control queue is held open" in blocker["reason"]
    assert "guest:guest" not in result.text  # the management API's password is masked


@BOTH
def test_the_dry_run_says_what_the_broker_counts_and_who_is_silent(lab: Lab) -> None:
    lab.start_worker("pre", queues=[f"{lab.queue}-2"])
    busy_solo(lab)

    result = gate(lab, "--dry-run", "--json")

    assert result.code == 1, result.text
    assert len(silent(result)) == 1
    assert result.report()["broker_count"]["summary"].startswith("1 worker(s) answered")
    human = gate(lab, "--dry-run")
    assert "broker: 1 worker(s) answered" in human.text
    assert "(silent)" in human.text


@BOTH
def test_prestop_drain_of_a_busy_pod_never_clears(lab: Lab) -> None:
    solo = busy_solo(lab)
    pod = solo.name.split("@")[0]

    result = gate(
        lab, *FAST, "--timeout", "4", "--worker", f"{pod}@*", "--allow-no-workers",
        "--json",
    )  # fmt: skip

    assert result.code == 1, result.text
    assert len(silent(result)) == 1
    assert "Nothing to drain" not in result.text


@BOTH
def test_prestop_drain_of_a_pod_whose_worker_is_gone_clears_beside_a_busy_named_one(
    lab: Lab,
) -> None:
    busy_solo(lab)
    extra = {} if lab.kind == "redis" else with_management()  # type: ignore[attr-defined]
    if extra:  # the API lists a new consumer a few seconds late (its statistics are collected)
        wait_for(lambda: listed_consumer(lab), timeout=30)

    result = gate(
        lab, *FAST, "--timeout", "4", "--worker", "gone-*@lab",
        "--allow-no-workers", "--json", **extra,
    )  # fmt: skip

    assert result.code == 0, result.text
    report = result.report()
    assert report["blockers"] == []
    assert report["out_of_scope"] == [f"solo-{lab.tag}@lab"]  # named, so left out by name


def test_without_names_a_selective_drain_cannot_leave_out_a_busy_worker(lab: Lab) -> None:
    # RabbitMQ without the management API counts a consumer it cannot name: it may be the
    # drained pod's own worker, so the gate does not call it out of scope (docs/gate.md).
    busy_solo(lab)

    result = gate(
        lab, *FAST, "--timeout", "3", "--worker", "gone-*@lab",
        "--allow-no-workers", "--json",
    )  # fmt: skip

    assert result.code == 1, result.text
    (blocker,) = result.report()["blockers"]
    assert "may be in this drain's scope" in blocker["reason"]


@BOTH
def test_an_idle_solo_worker_is_drained_and_cleared(lab: Lab) -> None:
    solo = lab.start_worker("solo", pool="solo", concurrency=1)
    pre = lab.start_worker("pre", queues=[f"{lab.queue}-2"])

    result = gate(lab, *FAST, "--timeout", "20", "--json")

    assert result.code == 0, result.text
    report = result.report()
    assert report["blockers"] == []
    assert report["broker_count"]["silent"] == []
    assert lab.active_queues() == {solo.name: [], pre.name: []}


@BOTH
def test_a_worker_with_remote_control_off_never_clears(lab: Lab) -> None:
    deaf = lab.start_worker("deaf", settings="tests.support.deaf_settings", wait=False)
    wait_for(lambda: " ready." in deaf.logs(), timeout=40)
    pre = lab.start_worker("pre", queues=[f"{lab.queue}-2"])

    result = gate(lab, *FAST, "--timeout", "4", "--json")

    assert result.code == 1, result.text
    if lab.kind == "redis":  # type: ignore[attr-defined]
        assert silent(result) == [(deaf.name, "silent")]  # its named connections
    else:
        assert silent(result) == [(f"unnamed consumer of {lab.queue}", "silent")]
    assert lab.active_queues([pre.name]) == {pre.name: [f"{lab.queue}-2"]}


def test_the_management_api_names_a_worker_with_remote_control_off(lab: Lab) -> None:
    deaf = lab.start_worker("deaf", settings="tests.support.deaf_settings", wait=False)
    wait_for(lambda: " ready." in deaf.logs(), timeout=40)
    # The API describes a new consumer's channel a few seconds late (statistics): till then
    # the gate counts it unnamed, rightly (docs/reliability.md).
    wait_for(lambda: listed_consumer(lab))

    result = gate(
        lab, *FAST, "--timeout", "4", "--allow-no-workers", "--json",
        **with_management(),
    )  # fmt: skip

    assert result.code == 1, result.text
    (blocker,) = result.report()["blockers"]
    assert (blocker["worker"], blocker["state"]) == (deaf.name, "silent"), result.text
    assert "remote control off" in blocker["reason"]


@BOTH
def test_a_worker_killed_after_an_earlier_gate_does_not_block_the_next(lab: Lab) -> None:
    lab.start_worker("w1")
    w2 = lab.start_worker("w2", queues=[f"{lab.queue}-2"])
    first = gate(lab, *FAST, "--timeout", "10")
    assert first.code == 0, first.text
    assert lab.manage("resume_consumers").code == 0
    assert set(KnownWorker.objects.values_list("hostname", flat=True)) == {
        f"w1-{lab.tag}@lab",
        w2.name,
    }
    w2.kill()

    result = gate(lab, *FAST, "--timeout", "10", "--json")

    assert result.code == 0, result.text
    report = result.report()
    assert report["blockers"] == []
    assert w2.name not in report["broker_count"]["alive"]
    if lab.kind == "rabbitmq":  # type: ignore[attr-defined]
        # Its control queue is gone: the roster stops asking about it.
        assert KnownWorker.objects.get(hostname=w2.name).absent_since is not None


def test_a_worker_seen_by_an_earlier_gate_that_is_busy_now_is_silent_by_name(lab: Lab) -> None:
    solo = lab.start_worker("solo", pool="solo", concurrency=1)
    first = gate(lab, *FAST, "--timeout", "10")
    assert first.code == 0, first.text
    assert lab.manage("resume_consumers").code == 0
    task_id = lab.send("generate_report", 120)
    wait_for(lambda: task_id in solo.logs())

    result = gate(lab, *FAST, "--timeout", "4", "--json")

    assert result.code == 1, result.text
    # The roster names it; its exclusive control queue says it is alive, not gone.
    assert silent(result) == [(solo.name, "silent")]


def test_a_gevent_worker_stuck_in_code_that_does_not_yield_is_silent(lab: Lab) -> None:
    pytest.importorskip("gevent")
    worker = lab.start_worker(
        "gevent", pool="gevent", concurrency=4, settings="tests.support.spin_settings"
    )
    lab.app.send_task("tests.support.spin_tasks.spin", args=(120,), queue=lab.queue)
    wait_for(lambda: not lab.ping(worker.name), timeout=30)

    result = gate(lab, *FAST, "--timeout", "4", "--json")

    assert result.code == 1, result.text
    assert silent(result) == [(f"unnamed consumer of {lab.queue}", "silent")]


@BOTH
def test_a_selective_drain_beside_an_answering_out_of_scope_worker_clears(lab: Lab) -> None:
    w1 = lab.start_worker("w1")
    w2 = lab.start_worker("w2")  # the same queue: its consumer is accounted for by its answer

    result = gate(lab, *FAST, "--timeout", "10", "--worker", "w1-*", "--json")

    assert result.code == 0, result.text
    report = result.report()
    assert report["out_of_scope"] == [w2.name]
    assert report["broker_count"]["silent"] == []
    assert lab.active_queues() == {w1.name: [], w2.name: [lab.queue]}


def test_a_management_api_that_cannot_be_read_is_said_and_the_count_goes_on(lab: Lab) -> None:
    pre = lab.start_worker("pre")
    closed = "http://guest:s3cret@127.0.0.1:9"  # nothing listens on the discard port
    settings = {"CELERY_APP": "project.celery.app", "RABBITMQ_MANAGEMENT_URL": closed}

    result = gate(
        lab, *FAST, "--timeout", "10", "--json", env={"TEST_TASKMASTER": json.dumps(settings)}
    )

    assert result.code == 0, result.text
    count = result.report()["broker_count"]
    assert count["method"] == "passive declares"
    assert "the RabbitMQ management API at http://guest:**@127.0.0.1:9" in count["note"]
    assert "s3cret" not in result.text
    assert "Traceback" not in result.text
    assert lab.active_queues() == {pre.name: []}
