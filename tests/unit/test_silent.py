"""Unit tests of the silence rules: the broker's count against the workers' answers.

What the broker says is built by hand here (``BrokerCount``); ``test_silent_workers.py``
gets it from real RabbitMQ and Redis, with real busy and deaf workers.
"""

from __future__ import annotations

from typing import Any

from taskmaster.gate.inspection import BrokerCount, LiveWorker, UnnamedConsumer
from taskmaster.gate.scope import Scope
from taskmaster.gate.silent import silent_blockers


def silence(count: BrokerCount, heard: dict[str, set[str]], **given: Any) -> Any:
    options: dict[str, Any] = {
        "drained": set(),
        "elsewhere": set(),
        "scope": Scope(),
        "relevant": {"celery", "reports"},
        "known": {},
    }
    options.update(given)
    return silent_blockers(count, heard, **options)


def said(result: Any) -> list[tuple[str, str]]:
    return [(b.worker, b.state) for b in result.blockers]


def rabbitmq(consumers: dict[str, int], **alive: LiveWorker) -> BrokerCount:
    return BrokerCount("passive declares", consumers=consumers, alive=alive)


def test_every_consumer_accounted_for_by_an_answer_is_no_blocker() -> None:
    count = rabbitmq({"celery": 2, "reports": 1})
    heard = {"a@h": {"celery"}, "b@h": {"celery", "reports"}}

    assert said(silence(count, heard)) == []


def test_a_consumer_nobody_answered_for_is_a_silent_blocker_of_its_queue() -> None:
    count = rabbitmq({"celery": 2, "reports": 0})

    result = silence(count, {"a@h": {"celery"}})

    assert said(result) == [("unnamed consumer of celery", "silent")]
    assert "1 consumer(s) of celery" in result.blockers[0].reason
    assert "may be in this drain's scope" not in result.blockers[0].reason


def test_a_drained_fleet_consumes_nothing_so_any_consumer_blocks() -> None:
    # After the drain the gate's own workers answer consuming nothing: the one consumer
    # left is somebody else's, whatever the queue.
    count = rabbitmq({"celery": 1, "reports": 0})

    assert said(silence(count, {"a@h": set(), "b@h": set()}, drained={"a@h", "b@h"})) == [
        ("unnamed consumer of celery", "silent")
    ]


def test_queues_that_do_not_matter_are_not_counted() -> None:
    count = rabbitmq({"other": 3})

    assert said(silence(count, {}, relevant={"celery"})) == []


def test_a_worker_the_broker_names_is_blocker_by_name_and_its_consumers_are_not_twice() -> None:
    solo = LiveWorker("solo@h", "its control queue is held open")
    count = rabbitmq({"celery": 2}, **{"solo@h": solo})

    result = silence(count, {"a@h": {"celery"}}, known={"solo@h": {"celery"}})

    assert said(result) == [("solo@h", "silent")]
    assert "its control queue is held open" in result.blockers[0].reason


def test_this_gates_own_silent_worker_is_left_to_the_gate_and_anothers_to_that_gate() -> None:
    count = rabbitmq(
        {"celery": 0},
        **{"mine@h": LiveWorker("mine@h", "x"), "theirs@h": LiveWorker("theirs@h", "x")},
    )

    result = silence(count, {}, drained={"mine@h"}, elsewhere={"theirs@h"})

    assert said(result) == []  # "mine" is unresponsive already (gate.py)


def test_a_worker_that_answered_is_never_silent() -> None:
    count = rabbitmq({"celery": 1}, **{"a@h": LiveWorker("a@h", "x")})

    assert said(silence(count, {"a@h": {"celery"}})) == []


def test_selective_drain_leaves_a_named_silent_worker_out_of_scope() -> None:
    busy = LiveWorker("busy@pod2", "x", queues=frozenset({"celery"}))
    count = rabbitmq({"celery": 1}, **{"busy@pod2": busy})

    result = silence(count, {}, scope=Scope(workers=("*@pod1",)))

    assert said(result) == []  # its one consumer is accounted for by the management API
    assert result.out_of_scope == ("busy@pod2",)


def test_selective_drain_cannot_leave_out_a_consumer_without_a_name() -> None:
    count = rabbitmq({"celery": 1})

    result = silence(count, {}, scope=Scope(workers=("*@pod1",)))

    assert said(result) == [("unnamed consumer of celery", "silent")]
    assert "may be in this drain's scope" in result.blockers[0].reason


def test_out_of_scope_named_worker_without_its_queues_does_not_account_for_a_consumer() -> None:
    # Known from the roster only: it may be drained and held, and the consumer someone
    # else, perhaps in scope. Only the management API's list accounts for it.
    busy = LiveWorker("busy@pod2", "its control queue is held open")
    count = rabbitmq({"celery": 1}, **{"busy@pod2": busy})

    result = silence(count, {}, scope=Scope(workers=("*@pod1",)), known={"busy@pod2": {"celery"}})

    assert said(result) == [("unnamed consumer of celery", "silent")]
    assert result.out_of_scope == ("busy@pod2",)


def test_queue_scope_takes_a_silent_worker_whose_queues_are_unknown() -> None:
    count = rabbitmq({}, **{"x@h": LiveWorker("x@h", "named connection")})

    assert said(silence(count, {}, scope=Scope(queues=("reports",)))) == [("x@h", "silent")]


def test_queue_scope_leaves_a_silent_worker_of_other_queues_alone() -> None:
    count = rabbitmq({}, **{"x@h": LiveWorker("x@h", "y", queues=frozenset({"celery"}))})

    result = silence(count, {}, scope=Scope(queues=("reports",)))

    assert said(result) == []
    assert result.out_of_scope == ("x@h",)


def test_a_stranger_consuming_a_queue_that_matters_blocks_by_its_address() -> None:
    count = BrokerCount(
        "passive declares and the management API",
        consumers={"celery": 1},
        unnamed=(UnnamedConsumer("10.0.0.5:4321", frozenset({"celery"})),),
    )

    result = silence(count, {})

    assert said(result) == [("unnamed worker at 10.0.0.5:4321", "silent")]  # once, not twice


def test_redis_listeners_beyond_the_answers_are_a_silent_blocker() -> None:
    count = BrokerCount("PUBLISH and CLIENT LIST", listeners=3)

    result = silence(count, {"a@h": {"celery"}, "b@h": set()})

    assert said(result) == [("unnamed worker listening to remote control", "silent")]
    assert result.blockers[0].reason.startswith("1 connection(s) listen")


def test_redis_listeners_all_accounted_for() -> None:
    named = LiveWorker("named@h", "2 connection(s) named by its worker", listens=True)
    count = BrokerCount("PUBLISH and CLIENT LIST", listeners=4, alive={"named@h": named})

    # Two answered, one silent with a name, one of the gate's own that stopped answering.
    result = silence(count, {"a@h": set(), "b@h": set()}, drained={"a@h", "b@h", "gone@h"})

    assert said(result) == [("named@h", "silent")]


def test_redis_worker_with_remote_control_off_is_named_but_does_not_listen() -> None:
    deaf = LiveWorker("deaf@h", "3 connection(s) named by its worker", listens=False)
    count = BrokerCount("PUBLISH and CLIENT LIST", listeners=1, alive={"deaf@h": deaf})

    assert said(silence(count, {"a@h": {"celery"}})) == [("deaf@h", "silent")]


def test_no_count_means_no_silent_blocker_and_nothing_invented() -> None:
    count = BrokerCount("", note="the filesystem transport keeps no count of consumers")

    assert said(silence(count, {})) == []


def test_a_named_silent_worker_whose_queues_are_unknown_is_not_said_twice() -> None:
    # Never heard (no roster), named by its control queue: it blocks, and it may be the one
    # consumer the broker counts, which then needs no blocker of its own.
    count = rabbitmq({"celery": 1}, **{"solo@h": LiveWorker("solo@h", "control queue held")})

    assert said(silence(count, {})) == [("solo@h", "silent")]
