"""A timeline of a gate's conversations with the fleet: ``manage.py`` with every broadcast
and every count of the broker's timed.

    python -m benchmarks.fleet.trace prepare_deploy --hold 600 2> timeline.txt

Runs ``manage.py`` with these arguments in this process, with the gate's control client
(``taskmaster.cluster.control.Cluster``) wrapped, not changed: at exit, one line per
broadcast and per count on stderr (start and end in seconds from this process's start, the
thread, the command, how many workers it was addressed to, how many replies came back).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from typing import Any

STARTED = time.perf_counter()
EVENTS: list[tuple[float, float, str, str, str, str]] = []


def since() -> float:
    return round(time.perf_counter() - STARTED, 3)


def install() -> None:
    from taskmaster.cluster.control import Cluster

    broadcast, count = Cluster._broadcast, Cluster.count

    def traced_broadcast(self: Any, command: str, workers: Any = None, **kw: Any) -> Any:
        began = since()
        to = "all" if workers is None else str(len(list(workers)))
        replies = broadcast(self, command, workers, **kw)
        name = threading.current_thread().name
        EVENTS.append((began, since(), name, command, to, str(len(replies))))
        return replies

    def traced_count(self: Any, *args: Any, **kw: Any) -> Any:
        began = since()
        counted = count(self, *args, **kw)
        name = threading.current_thread().name
        EVENTS.append((began, since(), name, "the broker's count", "", ""))
        return counted

    Cluster._broadcast = traced_broadcast  # type: ignore[method-assign]
    Cluster.count = traced_count  # type: ignore[method-assign]


def timeline() -> str:
    lines = ["  start     end  thread                 command                    to  replies"]
    lines += [
        f"{a:7.3f} {b:7.3f}  {thread:<22} {command:<24} {to:>6} {replies:>6}"
        for a, b, thread, command, to, replies in sorted(EVENTS)
    ]
    lines.append(f"exit at {since():.3f} s (0: this process's start, after Python's own)")
    return "\n".join(lines)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    install()
    atexit.register(lambda: print(timeline(), file=sys.stderr))
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
