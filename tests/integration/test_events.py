"""The worker-events thread says when it cannot listen, once, instead of swallowing it."""

from __future__ import annotations

import logging
import time

import pytest
from celery import Celery

from taskmaster.cluster.events import EventWatch


def test_a_broker_that_is_away_is_logged_once_not_retried_in_silence(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celery("events", broker="amqp://guest:guest@127.0.0.1:1//", set_as_current=False)
    caplog.set_level(logging.DEBUG, logger="taskmaster")

    with EventWatch(app) as watch:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(caplog.records) < 4:
            time.sleep(0.1)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # then quieter while the trouble lasts
    assert warnings[0].getMessage().startswith("worker events: OperationalError(")
    assert "listening again" in warnings[0].getMessage()
    assert watch.failing
