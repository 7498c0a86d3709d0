"""Start a simulated fleet and keep it until Ctrl-C (or SIGTERM), then stop it cleanly.

    python -m benchmarks.fleet --broker amqp://guest:guest@127.0.0.1:5672/fleet \\
        --workers 1000 --queues celery

The workers load the app as a worker would (``DJANGO_SETTINGS_MODULE``, default
``project.settings``), on ``--broker`` (default: ``CELERY_BROKER_URL``). Then, from another
shell with the same broker: ``./manage.py prepare_deploy``, ``celery -A project inspect
active``, ``./manage.py resume_consumers``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from benchmarks.fleet.fleet import NAME, PER_PROCESS, Fleet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL"))
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--per-process", type=int, default=PER_PROCESS)
    parser.add_argument("--per-connection", type=int, help="workers per AMQP connection")
    parser.add_argument("--queues", default="", help="comma-separated, as -Q")
    parser.add_argument("--name", default=NAME, help=f"node name pattern ({NAME})")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--without-heartbeat", action="store_true")
    parser.add_argument("--without-taskmaster", action="store_true", help="no drain lease")
    parser.add_argument("--logs", type=Path, help="a folder for the processes' logs")
    args = parser.parse_args()
    if not args.broker:
        sys.exit("--broker (or CELERY_BROKER_URL) names the broker")
    env = {**os.environ, "CELERY_BROKER_URL": args.broker}
    env.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    if args.logs:
        args.logs.mkdir(parents=True, exist_ok=True)
    fleet = Fleet(
        args.workers,
        env,
        queues=[q for q in args.queues.split(",") if q],
        name=args.name,
        per_process=args.per_process,
        per_connection=args.per_connection,
        concurrency=args.concurrency,
        heartbeat=not args.without_heartbeat,
        taskmaster=not args.without_taskmaster,
        log_dir=args.logs,
    )
    started = time.monotonic()
    fleet.start()
    print(
        f"{args.workers:,} simulated workers answer ({fleet.names[0]} … {fleet.names[-1]}), "
        f"in {len(fleet.processes)} processes, started in {time.monotonic() - started:.1f} s; "
        "Ctrl-C stops them",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(p.poll() is None for p in fleet.processes):
            time.sleep(1)
        print("a fleet process exited: stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
