"""RabbitMQ's management API (HTTP), read-only: which queues exist and who consumes them.

AMQP itself only counts a queue's consumers. The management plugin lists them, each with the
connection it came on, so the gate can name a worker that does not answer: by its control
queue (``<hostname>.celery.pidbox``, consumed on the worker's own connection) or by the name
``taskmaster.tasks`` gave that connection. It lists a new consumer a few seconds late (its
statistics are collected, not live), so counting stays with AMQP's passive declares; this
only names.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from taskmaster.credentials import masked, without_credentials

TIMEOUT = 2.0  # seconds per request: a management API that hangs must not hold a poll


class ManagementError(Exception):
    """The management API could not be read; ``str()`` is a sentence, password masked."""


@dataclass(frozen=True)
class Consumer:
    queue: str
    connection: str  # the broker's name for the connection ("10.0.0.5:43210 -> 10.0.0.2:5672")
    peer: str  # "10.0.0.5:43210"


@dataclass(frozen=True)
class Listing:
    """One read of a virtual host: its queues and its consumers."""

    queues: frozenset[str]
    consumers: tuple[Consumer, ...]


class ManagementAPI:
    def __init__(self, url: str, vhost: str, *, timeout: float = TIMEOUT) -> None:
        self.label = masked(url)
        base, self._auth = without_credentials(url)
        parts = urlsplit(base)
        self._base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.vhost = vhost
        self.timeout = timeout

    def listing(self) -> Listing:
        """The queues of the virtual host, and its consumers with their connections."""
        vhost = quote(self.vhost, safe="")
        queues = self._get(f"/api/queues/{vhost}?columns=name")
        columns = "queue.name,channel_details.connection_name,channel_details.peer_host," + (
            "channel_details.peer_port"
        )
        consumers = tuple(
            consumer
            for c in self._get(f"/api/consumers/{vhost}?columns={columns}")
            if (consumer := _consumer(c)) is not None
        )
        return Listing(frozenset(str(q["name"]) for q in queues if isinstance(q, dict)), consumers)

    def connection_names(self) -> dict[str, str]:
        """Each connection of the virtual host -> the name its client gave it, if any."""
        vhost = quote(self.vhost, safe="")
        names = {}
        for c in self._get(f"/api/vhosts/{vhost}/connections?columns=name,client_properties"):
            given = (c.get("client_properties") or {}).get("connection_name")
            if given:
                names[str(c["name"])] = str(given)
        return names

    def _get(self, path: str) -> list[dict[str, Any]]:
        request = urllib.request.Request(self._base + path, headers={"Accept": "application/json"})
        if self._auth:
            request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            why = {401: "it refused the login", 404: f"no virtual host {self.vhost!r} there"}
            raise ManagementError(
                f"the RabbitMQ management API at {self.label} answered {exc.code} "
                f"({why.get(exc.code, exc.reason)})"
            ) from None
        except (OSError, ValueError) as exc:  # unreachable, timed out, not JSON
            raise ManagementError(
                f"the RabbitMQ management API at {self.label} cannot be read: {exc}"
            ) from None
        if not isinstance(answer, list):
            raise ManagementError(
                f"the RabbitMQ management API at {self.label} did not list {path}"
            )
        return [item for item in answer if isinstance(item, dict)]


def _consumer(entry: Any) -> Consumer | None:
    """One consumer of the listing; None for one whose channel the API does not describe yet
    (it gives ``[]`` for a consumer it has not collected the details of): it stays counted
    by AMQP, unnamed."""
    channel, queue = entry.get("channel_details"), entry.get("queue")
    if not isinstance(channel, dict) or not isinstance(queue, dict):
        return None
    if not channel.get("connection_name") or not queue.get("name"):
        return None
    peer = f"{channel.get('peer_host', '?')}:{channel.get('peer_port', '?')}"
    return Consumer(str(queue["name"]), str(channel["connection_name"]), peer)
