"""Worker events, heard in a thread of the gate: who left cleanly, when a task ended."""

from __future__ import annotations

import logging
import threading
from typing import Any

from taskmaster import log

logger = logging.getLogger("taskmaster")


class EventWatch:
    """Listens to worker events in a thread of its own, with a connection of its own.

    ``worker-offline`` is what a worker sends when it shuts down cleanly: it tells a worker
    that left apart from one that stopped answering. Task endings (sent by workers running
    with ``-E``) wake the poll early. Events can be lost: they only ever hasten a poll or
    explain a silence, never replace a poll.
    """

    ENDINGS = frozenset({"task-succeeded", "task-failed", "task-revoked", "task-rejected"})

    def __init__(self, app: Any) -> None:
        self.app = app
        self.offline: set[str] = set()
        self.activity = threading.Event()
        self._stopped = threading.Event()
        self._receiver: Any = None
        self.failing = False  # the last try to listen failed
        self._thread = log.thread(self._run, name="taskmaster-events")

    def __enter__(self) -> EventWatch:
        # kombu says "Connected to …" at INFO each time the receiver connects: the gate's own
        # listening is not news on a project's console (docs/usage.md, "Logging").
        logging.getLogger("kombu.mixins").addFilter(_quiet_connect)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("kombu.mixins").removeFilter(_quiet_connect)
        self._stopped.set()
        if self._receiver is not None:
            self._receiver.should_stop = True
        # It stops by itself within its safety interval (half a second); waiting for that
        # would only delay the verdict, and a daemon thread does not hold up the exit.

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                with self.app.connection_for_read() as conn:
                    # kombu would retry a broker that is away without end, and say nothing.
                    conn.ensure_connection(max_retries=1)
                    self._receiver = self.app.events.Receiver(
                        conn, handlers={"*": self._on_event}, app=self.app
                    )
                    if self._stopped.is_set():
                        return
                    self.failing = False
                    for _ in self._receiver.consume(safety_interval=0.5, wakeup=False):
                        pass
            except Exception as exc:  # the broker went away: the gate deals with it
                # Said once per trouble, not once a second while the broker is away.
                level = logging.DEBUG if self.failing else logging.WARNING
                logger.log(level, "worker events: %r; listening again", exc)
                logger.debug("worker events: the error in full", exc_info=True)
                self.failing = True
                self._stopped.wait(1)

    def _on_event(self, event: dict[str, Any]) -> None:
        kind, hostname = event.get("type"), event.get("hostname", "")
        if kind == "worker-offline":
            self.offline.add(hostname)
            self.activity.set()
        elif kind == "worker-online":
            self.offline.discard(hostname)
        elif kind in self.ENDINGS:
            self.activity.set()


def _quiet_connect(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Connected to")
