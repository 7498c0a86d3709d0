"""The gate's backoff while its broker is away (docs/reliability.md, promise 4)."""

from __future__ import annotations

from itertools import islice

from taskmaster.drain.run import reconnect_delays


def test_the_pauses_between_tries_double_from_1_s_up_to_10_s() -> None:
    assert list(islice(reconnect_delays(), 7)) == [1, 2, 4, 8, 10, 10, 10]


def test_a_broker_back_after_5_s_is_found_at_7_s() -> None:
    """The 7 s a 5 s cut costs (tests/integration/test_faults.py): tries at 0, 1, 3, 7 s."""
    tries, at = [0.0], 0.0
    for delay in islice(reconnect_delays(), 3):
        at += delay
        tries.append(at)
    assert next(t for t in tries if t >= 5) == 7
