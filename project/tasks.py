"""Example tasks, one of each kind the deploy gate knows.

- ``resize_images``: interruptible. ``acks_late=True``: if its worker stops, the broker
  delivers the message again, so it must be idempotent (resizing twice is harmless).
- ``send_receipt``: short. Acknowledged when it starts, but a hard ``time_limit`` of 30 s
  means the worker finishes (or kills) it soon: the gate waits for it.
- ``generate_report``: blocking. Acknowledged when it starts, no time limit: stopping its
  worker loses it. The admin lists it; it should be made acks_late or short.
"""

from __future__ import annotations

import time

from celery import shared_task


@shared_task(acks_late=True, reject_on_worker_lost=True)
def resize_images(seconds: float = 1.0) -> str:
    time.sleep(seconds)
    return "resized"


@shared_task(time_limit=30, soft_time_limit=25)
def send_receipt(seconds: float = 1.0) -> str:
    time.sleep(seconds)
    return "sent"


@shared_task
def generate_report(seconds: float = 60.0, customer: str = "") -> str:
    time.sleep(seconds)
    return f"report for {customer or 'everyone'}"
