"""A task that never yields: on a gevent pool its worker answers nothing while it runs."""

from __future__ import annotations

import time

from celery import shared_task


@shared_task
def spin(seconds: float) -> int:
    """Busy-loop for ``seconds`` (CPU-bound code, or a C call that holds the hub)."""
    end, rounds = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        rounds += 1
    return rounds
