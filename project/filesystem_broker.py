"""Celery's ``filesystem://`` transport, made safe for several processes at once.

kombu's transport (5.7) creates a message file before it writes it, and a reader that picks the
file up in between gets an empty message: ``JSONDecodeError``, which ends a worker with
"Unrecoverable error" (kombu issue #1551). Two workers starting at once can likewise truncate
each other's binding to the remote-control exchange, and the one left out never hears a
broadcast: a gate would not see it. This demo broker runs a worker, a gate and a test's client
side by side, so it publishes, claims and binds atomically instead:

- a message is written under a name no reader matches, then renamed into place;
- a reader claims a message by renaming it in its own folder (an atomic ``rename``, where kombu
  may copy across filesystems and two readers may then both deliver it);
- an exchange table is locked before it is read or rewritten, never truncated unlocked.

The URL stays ``filesystem://``; ``CELERY_BROKER_TRANSPORT`` in the settings selects this class.
RabbitMQ and Redis need none of it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.virtual import Empty
from kombu.utils.json import dumps, loads

#: Appended to a message's name while it is being written or read: readers match ``.msg`` only.
HIDDEN = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + HIDDEN, "wb") as f:
                f.write(dumps(payload).encode())
            os.rename(path + HIDDEN, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            path = os.path.join(self.data_folder_in, name)
            try:
                os.rename(path, path + HIDDEN)  # the claim: only one reader's rename succeeds
            except OSError:
                continue  # another reader took it
            try:
                payload = Path(path + HIDDEN).read_bytes()
                if self.store_processed:
                    shutil.move(path + HIDDEN, os.path.join(self.processed_folder, name))
                else:
                    os.remove(path + HIDDEN)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {path!r} from queue.") from exc
            return loads(payload.decode())
        raise Empty()

    def _size(self, queue: str) -> int:
        # The messages _get would deliver: kombu 5.5 counts any name that contains the queue's,
        # a message still being written and another queue's whose name ends the same included.
        wanted = f"{queue}.msg"
        return sum(name.partition(".")[2] == wanted for name in os.listdir(self.data_folder_in))

    def table_file(self, exchange: str) -> Path:
        """The file of an exchange's bindings. kombu 5.6 and later check the name first
        (``_exchange_file``); kombu 5.5 joins it as it is."""
        checked = getattr(super(), "_exchange_file", None)
        return checked(exchange) if checked else self.control_folder / f"{exchange}.exchange"

    def get_table(self, exchange: str) -> list[Any]:
        try:
            with self.table_file(exchange).open("rb") as f:
                fcntl.flock(f, fcntl.LOCK_SH)
                table = f.read()
        except FileNotFoundError:
            return []
        return bindings(table)

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        file = self.table_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        # Open without truncating, lock, then read and rewrite: kombu's "wb" empties the table
        # before it holds the lock, and a second worker binding then writes over the first.
        fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o666)
        with os.fdopen(fd, "r+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            table = bindings(f.read())
            if binding not in table:
                table.insert(0, binding)
                f.seek(0)
                f.truncate()
                f.write(dumps(table).encode())


def bindings(table: bytes) -> list[Any]:
    """An exchange table's bindings; a file another process has just created holds none yet."""
    return [filesystem.exchange_queue_t(*q) for q in loads(table.decode())] if table else []


class Transport(filesystem.Transport):
    Channel = Channel
