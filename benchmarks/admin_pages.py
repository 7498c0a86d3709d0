"""Benchmark: the admin pages on a real backlog, through Django's test client in process.

    .venv/bin/python benchmarks/admin_pages.py [--runs 10] [--workers 8] [--blockers 5000]

1. The readiness page with 8 real ``celery worker`` processes (prefork, concurrency 1), each
   running a blocking task and holding prefetched ones: the wall time of a GET whose look at
   the workers is not cached (a dry run: one discovery broadcast, which waits the whole reply
   timeout by design, then the task questions), and of a refresh within a second (cached).
2. A gate run with 5,000 blockers, recorded by a real ``prepare_deploy`` that gave up on two
   workers holding 5,000 ``generate_report`` tasks (2 running, the rest prefetched): the wall
   time and size of its page, of its last page of blockers, of the run list, and of the
   whole report's download.

Needs PostgreSQL (it creates the database named by ``--database``) and RabbitMQ (the vhost
of ``--broker`` must exist). Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATABASE = "postgres://postgres@127.0.0.1:5432/taskmaster_admin_bench"
BROKER = "amqp://guest:guest@127.0.0.1:5672/tm_admin"


def setup(database: str, broker: str) -> None:
    name = urlsplit(database).path.lstrip("/")
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f"CREATE DATABASE {name}"],
        capture_output=True,
    )
    os.environ.update(
        DATABASE_URL=database,
        CELERY_BROKER_URL=broker,
        DJANGO_SETTINGS_MODULE="project.settings",
    )
    env = {**os.environ}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS.append("testserver")  # the test client's host


def timed(runs: int, get: Callable[[], Any]) -> tuple[list[float], int]:
    took, size = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        response = get()
        took.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        size = len(response.content)
    return took, size


def say(what: str, took: list[float], size: int) -> None:
    print(
        f"  {what}: median {statistics.median(took):.3f} s, min {min(took):.3f} s, "
        f"max {max(took):.3f} s, {size / 1024:,.0f} KiB"
    )


def readiness(lab: Any, client: Any, runs: int, workers: int) -> None:
    from django.urls import reverse

    from taskmaster.readiness.looks import FRESH, looks

    nodes = [lab.start_worker(f"w{n}", concurrency=1, wait=False) for n in range(workers)]
    for node in nodes:
        lab.wait_ready(node, timeout=300)
    for _ in range(3 * workers):  # each: one running, two prefetched
        lab.send("generate_report", 600)
    for node in nodes:
        lab.wait_active(node.name, timeout=60)
    page = reverse("admin:taskmaster_deployreadiness_changelist")
    status = reverse("admin:taskmaster_deployreadiness_status")

    def fresh_look() -> Any:
        looks.forget()
        return client.get(page)

    client.get(page)  # the first look imports the task modules
    print(f"readiness page, {workers} workers, {3 * workers} tasks held, over {runs} runs:")
    say("page with a new look at the workers", *timed(runs, fresh_look))
    client.get(status)
    time.sleep(FRESH / 2)
    say("refresh within a second (the look shared)", *timed(runs, lambda: client.get(status)))
    for node in nodes:
        node.kill()
    purge(lab)


def purge(lab: Any) -> None:
    """Drop the lab queue's messages (those the killed workers had prefetched came back)."""
    with lab.app.connection_for_write() as conn:
        conn.default_channel.queue_purge(lab.queue)


def big_run(lab: Any, client: Any, runs: int, blockers: int) -> None:
    from django.urls import reverse

    from taskmaster.models import GateRun

    share = blockers // 2 + 100
    for n in range(2):
        lab.start_worker(f"b{n}", concurrency=1, prefetch=share)
    with lab.app.producer_or_acquire() as producer:
        for _ in range(blockers):
            lab.app.send_task(
                "project.tasks.generate_report", args=(600,), queue=lab.queue, producer=producer
            )
    time.sleep(15)  # the workers prefetch their share
    result = lab.manage("prepare_deploy", "--timeout", "10", "--interval", "5", "--json")
    assert result.code == 1, result.text[-2000:]
    run = GateRun.objects.latest("pk")
    count = run.blockers.count()
    change = reverse("admin:taskmaster_gaterun_change", args=[run.pk])
    print(f"gate run #{run.pk}, {count:,} blockers recorded by a real gate, over {runs} runs:")
    say("its page", *timed(runs, lambda: client.get(change)))
    say("its last page of blockers", *timed(runs, lambda: client.get(f"{change}?blockers=999")))
    runs_list = reverse("admin:taskmaster_gaterun_changelist")
    say("the run list", *timed(runs, lambda: client.get(runs_list)))
    report = reverse("admin:taskmaster_gaterun_report", args=[run.pk])
    say("the whole report (download)", *timed(3, lambda: client.get(report)))
    purge(lab)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--blockers", type=int, default=5000)
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--broker", default=BROKER)
    args = parser.parse_args()
    setup(args.database, args.broker)

    from django.contrib.auth.models import User
    from django.test import Client

    from tests.support.lab import Lab

    user, _ = User.objects.get_or_create(username="bench", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    with tempfile.TemporaryDirectory() as tmp:
        lab = Lab(args.broker, args.database, Path(tmp))
        try:
            readiness(lab, client, args.runs, args.workers)
            big_run(lab, client, args.runs, args.blockers)
        finally:
            lab.close()


if __name__ == "__main__":
    main()
