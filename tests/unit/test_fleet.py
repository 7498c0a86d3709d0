"""The fleet's look when the broker's count itself fails: never "safe" for want of a count.

The cluster here is a stand-in that only fails: what is tested is the fleet's own rule, not
Celery's control (tests/integration/test_silent_workers.py runs the real count)."""

from __future__ import annotations

from typing import Any

import pytest

from taskmaster.drain.fleet import Fleet
from taskmaster.exits import BrokerUnavailable
from taskmaster.gate.rules import Gate


class FailingCount:
    counts = True

    def __init__(self, error: Exception) -> None:
        self.error = error

    def count(self, *args: Any) -> Any:
        raise self.error


def fleet(error: Exception) -> Fleet:
    gate = Gate({}, started_at=0.0, timeout=60, interval=5)
    return Fleet(FailingCount(error), gate, declared={"celery"}, remember=False)  # type: ignore[arg-type]


def test_a_count_that_fails_is_a_blocker_not_a_clear() -> None:
    look = fleet(ValueError("an answer no broker gives"))

    silence = look.look({"w1@h": set()})

    assert [(b.worker, b.state) for b in silence.blockers] == [("the broker's count", "silent")]
    assert "ValueError('an answer no broker gives')" in silence.blockers[0].reason
    assert look.as_json()["method"] is None
    assert look.as_json()["silent"] == ["the broker's count"]


def test_a_lost_broker_is_left_to_the_run_which_reconnects() -> None:
    with pytest.raises(BrokerUnavailable):
        fleet(BrokerUnavailable("cannot reach the broker")).look({})
