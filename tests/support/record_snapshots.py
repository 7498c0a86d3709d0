"""Record the worker replies the unit tests of the gate's rules read (``make snapshots``).

The rules (``tests/unit/test_rules.py``) are tested on what a real worker answers, not on
replies written by hand: when Celery changes the shape of ``active``, ``reserved``,
``scheduled`` or ``active_queues``, recording again shows it. One file per Celery minor
version, recorded with that Celery (``make snapshots`` runs this in each virtualenv):

    python -m tests.support.record_snapshots    # -> snapshots/one_worker_mixed-celery5.7.json

The scene, on RabbitMQ: ``rec@lab`` (prefork, concurrency 2, queue ``rec-q``) runs
generate_report (early ack) and resize_images (acks_late); generate_report, resize_images and
send_receipt wait prefetched; a send_receipt is held for its ETA, 300 s on.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import celery

from tests.support.lab import RABBITMQ_URL, Lab, wait_for
from tests.support.run import create_vhost, delete_vhost

SNAPSHOTS = Path(__file__).parent / "snapshots"
WORKER, QUEUE = "rec@lab", "rec-q"  # the names the recording is written with
COMMANDS = ("active", "reserved", "scheduled", "active_queues")


def snapshot_path(version: str = celery.__version__) -> Path:
    """The recording for a Celery version (its major.minor)."""
    return SNAPSHOTS / f"one_worker_mixed-celery{'.'.join(version.split('.')[:2])}.json"


def record(lab: Lab) -> dict[str, object]:
    worker = lab.start_worker("rec", concurrency=2, prefetch=4)
    lab.send("generate_report", 20, kwargs={"customer": "acme"})
    lab.send("resize_images", 20)
    lab.wait_active(worker.name, count=2)
    for task, seconds in (("generate_report", 1), ("resize_images", 1), ("send_receipt", 5)):
        lab.send(task, seconds)
    lab.send("send_receipt", 1, countdown=300)
    inspect = lab.app.control.inspect(destination=[worker.name], timeout=2.0)
    wait_for(lambda: len((inspect.reserved() or {}).get(worker.name, [])) == 3)
    wait_for(lambda: len((inspect.scheduled() or {}).get(worker.name, [])) == 1)
    replies = {command: getattr(inspect, command)() for command in COMMANDS}
    recorded_at = time.time()
    text = json.dumps(replies).replace(worker.name, WORKER).replace(lab.queue, QUEUE)
    return {**json.loads(text), "recorded_at": recorded_at, "celery": celery.__version__}


def main() -> None:
    create_vhost(RABBITMQ_URL)
    try:
        with tempfile.TemporaryDirectory() as var:
            lab = Lab(RABBITMQ_URL, "sqlite://", Path(var))
            try:
                snapshot = record(lab)
            finally:
                lab.close()
    finally:
        delete_vhost(RABBITMQ_URL)
    path = snapshot_path()
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n")
    print(f"recorded {path.relative_to(Path.cwd())} with Celery {celery.__version__}")


if __name__ == "__main__":
    main()
