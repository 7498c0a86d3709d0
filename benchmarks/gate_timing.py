"""Benchmark: how long the gate takes on a real RabbitMQ cluster.

    .venv/bin/python benchmarks/gate_timing.py [--runs 5]

Measures, with two real ``celery worker`` processes (prefork, concurrency 2) on the machine's
RabbitMQ and the gate as a ``manage.py`` subprocess (as a deploy runs it):

1. the wall time of ``prepare_deploy`` on an idle two-worker cluster (process start to exit,
   Python and Django start-up included), each run followed by ``resume_consumers``;
2. with ``--interval 1``, the time from the last blocker ending (the worker's own log line
   "succeeded", millisecond timestamps) to the gate's verdict (``finished_at`` of its report).

Needs PostgreSQL (it creates the database ``taskmaster_bench``) and RabbitMQ (it uses the vhost
``taskmaster_bench``). Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.lab import Lab, wait_for  # noqa: E402

DATABASE = "postgres://postgres@127.0.0.1:5432/taskmaster_bench"
VHOST = "taskmaster_bench"
SUCCEEDED = re.compile(
    r"^\[(?P<at>[\d-]+ [\d:,]+): INFO/\S+\] Task \S+\[(?P<id>[\w-]+)\] succeeded"
)


def setup() -> None:
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", VHOST], capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", "CREATE DATABASE taskmaster_bench"],
        capture_output=True,
    )
    env = {**os.environ, "DATABASE_URL": DATABASE, "DJANGO_SETTINGS_MODULE": "project.settings"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def finished_at(gate_json: str) -> float:
    return datetime.fromisoformat(json.loads(gate_json)["finished_at"]).timestamp()


def succeeded_at(log: str, task_id: str) -> float:
    for line in log.splitlines():
        match = SUCCEEDED.match(line)
        if match and match["id"] == task_id:
            at = datetime.strptime(match["at"], "%Y-%m-%d %H:%M:%S,%f")
            return at.replace(tzinfo=timezone.utc).timestamp()
    raise LookupError(task_id)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    setup()
    os.environ["TZ"] = "UTC"  # worker log timestamps are local time
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(f"amqp://guest:guest@127.0.0.1:5672/{VHOST}", DATABASE, Path(tmp))
        try:
            w1 = lab.start_worker("w1")
            lab.start_worker("w2", queues=[f"{lab.queue}-2"])
            idle = []
            for _ in range(args.runs):
                started = time.monotonic()
                result = lab.manage("prepare_deploy", "--json")
                idle.append(time.monotonic() - started)
                assert result.code == 0, result.text
                assert lab.manage("resume_consumers").code == 0
            latency = []
            for _ in range(args.runs):
                task_id = lab.send("send_receipt", 3)
                lab.wait_active(w1.name)
                result = lab.manage("prepare_deploy", "--interval", "1", "--json")
                assert result.code == 0, result.text
                ended = wait_for(lambda task_id=task_id: _try(succeeded_at, w1.logs(), task_id))
                latency.append(finished_at(result.out) - ended)
                assert lab.manage("resume_consumers").code == 0
        finally:
            lab.close()
    print(f"idle two-worker RabbitMQ cluster, prepare_deploy wall time over {args.runs} runs:")
    print(f"  median {statistics.median(idle):.2f} s, min {min(idle):.2f} s, max {max(idle):.2f} s")
    print(f"last blocker ending -> verdict, --interval 1, over {args.runs} runs:")
    print(
        f"  median {statistics.median(latency):.2f} s, min {min(latency):.2f} s, "
        f"max {max(latency):.2f} s"
    )


def _try(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except LookupError:
        return None


if __name__ == "__main__":
    main()
