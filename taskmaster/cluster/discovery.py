"""Discovery in a thread: one broadcast to every worker, heard as the replies come in.

Finding the workers is the one step that must wait a whole reply timeout: a worker that has
not answered yet may still be out there. The gate does not sit idle meanwhile. It drains the
workers that answered at once (they answer within milliseconds of one another), and takes
the late ones, if any, when the broadcast ends; a clear verdict waits for that end.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

from taskmaster import log
from taskmaster.cluster.control import Cluster, Discovery
from taskmaster.gate.inspection import task_queues

QUIET = 0.1  # seconds without a new reply after which the first answers count as settled


class Discovering:
    """A discovery under way, on a connection of its own."""

    def __init__(self, app: Any, *, reply_timeout: float) -> None:
        self.cluster = Cluster(app, reply_timeout=reply_timeout)
        self.done = threading.Event()
        self.connected = threading.Event()  # the broadcast goes out next (or it has failed)
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._answers: Counter[str] = Counter()
        self._queues: dict[str, list[dict[str, Any]]] = {}
        self._last_heard = 0.0
        self._thread = log.thread(self._run, name="taskmaster-discovery")

    def start(self) -> Discovering:
        self._thread.start()
        return self

    def __enter__(self) -> Discovering:
        """Start, and return once the broadcast is about to go out; raise what kept it from
        connecting (a broker out of reach is not tried twice over).

        The reply timeout runs from the broadcast: the caller's own start (imports, queries,
        a second connection) would otherwise slow this thread's connect by holding the GIL.
        """
        self.start()
        self.connected.wait()
        if self.error is not None:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()

    def _run(self) -> None:
        try:
            with self.cluster.connected():
                self.connected.set()
                if not self.cluster.discover(self._heard).answers:
                    self.cluster.discover(self._heard)  # a reply can be late on a busy broker
        except BaseException as exc:  # handed to whoever reads the result
            self.error = exc
        finally:
            self.connected.set()
            self.done.set()

    def _heard(self, host: str, declarations: Any) -> None:
        with self._lock:
            self._answers[host] += 1
            self._queues[host] = task_queues(declarations)
            self._last_heard = time.monotonic()

    def settled(self) -> Discovery:
        """The workers heard so far, once replies stop arriving (or the broadcast is over)."""
        while not self.done.wait(0.01):
            with self._lock:
                if self._answers and time.monotonic() - self._last_heard >= QUIET:
                    break
        return self._so_far()

    def result(self, timeout: float | None = None) -> Discovery:
        """Every worker that answered the whole broadcast (raises what stopped it); with a
        ``timeout``, the workers heard by then if it is still listening (``done`` not set)."""
        self.done.wait(timeout)
        return self._so_far()

    def _so_far(self) -> Discovery:
        if self.error is not None:
            raise self.error
        with self._lock:
            return Discovery(answers=Counter(self._answers), queues=dict(self._queues))
