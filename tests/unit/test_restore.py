"""A restore asks once per queue declaration, whatever the number of workers that miss it:
each request reaches every worker's mailbox (1,000 workers without the lease took 71 s
with one request per worker; docs/performance.md)."""

from __future__ import annotations

from taskmaster.drain.restore import by_declaration

CELERY = {"name": "celery", "exchange": {"name": "celery", "type": "direct"}, "durable": True}
MAIL = {"name": "mail", "exchange": {"name": "mail", "type": "direct"}, "durable": True}


def test_workers_that_miss_the_same_declaration_are_asked_in_one_request() -> None:
    missing = {f"w{n}@host": [CELERY] for n in range(1000)} | {"w7@host": [CELERY, MAIL]}

    grouped = by_declaration(missing)

    assert [(d["name"], len(workers)) for d, workers in grouped] == [
        ("celery", 1000),
        ("mail", 1),
    ]
    assert grouped[1][1] == ["w7@host"]


def test_a_queue_declared_differently_on_two_workers_is_two_requests() -> None:
    quorum = {**CELERY, "queue_arguments": {"x-queue-type": "quorum"}}

    grouped = by_declaration({"a@host": [CELERY], "b@host": [quorum]})

    assert [workers for _, workers in grouped] == [["a@host"], ["b@host"]]
