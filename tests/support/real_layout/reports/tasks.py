"""The layout's tasks: none sets a time limit of its own; the global 30 s bounds them all."""

import time

from celery import shared_task


@shared_task
def build(seconds: float = 1.0) -> str:
    time.sleep(seconds)
    return "built"
