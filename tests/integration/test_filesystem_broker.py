"""The demo's filesystem broker under processes that publish, read and bind at once.

kombu's own transport fails these: a reader that picks up a message file before its writer
has written it gets an empty message (a worker then dies with "Unrecoverable error"), and
workers binding at once lose each other's remote-control binding.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection
from kombu.transport.virtual import Empty

from project.settings import FILESYSTEM_TRANSPORT, filesystem_transport_options

WRITERS, READERS, MESSAGES = 3, 3, 1000
BINDERS, EXCHANGES = 8, [f"x{n}.pidbox" for n in range(50)]


def channel(var_dir: Path) -> Any:
    connection = Connection(
        "filesystem://",
        transport=FILESYSTEM_TRANSPORT,
        transport_options=filesystem_transport_options(var_dir),
    )
    return connection.default_channel


def publish(var_dir: Path, writer: int) -> None:
    ch = channel(var_dir)
    for n in range(MESSAGES):
        ch._put("jobs", {"writer": writer, "n": n, "padding": "x" * 4000})


def consume(var_dir: Path, writers_done: Any, got: Any) -> None:
    ch = channel(var_dir)
    seen = []
    while True:
        try:
            message = ch._get("jobs")
        except Empty:
            if writers_done.is_set():
                try:  # one more look: the last message may have landed after the check
                    message = ch._get("jobs")
                except Empty:
                    break
            else:
                # A short nap, as kombu's own polling does: a reader that spins starves
                # the writers and the other tests of the machine's cores.
                time.sleep(0.005)
                continue
        seen.append((message["writer"], message["n"]))
    got.put(seen)


def bind(var_dir: Path, n: int, start: Any) -> None:
    ch = channel(var_dir)
    start.wait()
    for exchange in EXCHANGES:
        ch._queue_bind(exchange, "", "", f"w{n}.{exchange}")


@pytest.fixture
def ctx() -> Any:
    return multiprocessing.get_context("fork")


def test_each_message_is_read_whole_and_once_by_concurrent_readers(
    tmp_path: Path, ctx: Any
) -> None:
    writers_done, got = ctx.Event(), ctx.Queue()
    readers = [
        ctx.Process(target=consume, args=(tmp_path, writers_done, got)) for _ in range(READERS)
    ]
    writers = [ctx.Process(target=publish, args=(tmp_path, w)) for w in range(WRITERS)]
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join()
    writers_done.set()
    for process in readers:
        process.join(timeout=60)

    # A torn read raises in its reader, which then exits non-zero without reporting.
    assert [p.exitcode for p in readers] == [0] * READERS
    seen = [item for _ in readers for item in got.get(timeout=5)]
    assert sorted(seen) == [(w, n) for w in range(WRITERS) for n in range(MESSAGES)]


def test_a_message_being_written_is_invisible_until_it_is_whole(tmp_path: Path) -> None:
    ch = channel(tmp_path)
    ch._put("jobs", {"n": 1})
    data = Path(ch.data_folder_in)
    (name,) = os.listdir(data)
    os.rename(data / name, data / f"{name}.part")  # as it is while its writer writes it

    with pytest.raises(Empty):
        ch._get("jobs")
    assert ch._size("jobs") == 0

    os.rename(data / f"{name}.part", data / name)
    assert ch._size("jobs") == 1
    assert ch._get("jobs") == {"n": 1}
    assert os.listdir(data) == []


def test_workers_binding_at_once_all_hear_broadcasts(tmp_path: Path, ctx: Any) -> None:
    start = ctx.Event()
    binders = [ctx.Process(target=bind, args=(tmp_path, n, start)) for n in range(BINDERS)]
    for process in binders:
        process.start()
    start.set()
    for process in binders:
        process.join()

    assert [p.exitcode for p in binders] == [0] * BINDERS
    ch = channel(tmp_path)
    tables = {exchange: sorted(q.queue for q in ch.get_table(exchange)) for exchange in EXCHANGES}
    assert tables == {x: sorted(f"w{n}.{x}" for n in range(BINDERS)) for x in EXCHANGES}


def test_an_exchange_table_just_created_reads_as_empty(tmp_path: Path) -> None:
    ch = channel(tmp_path)
    (Path(ch.control_folder) / "celery.pidbox.exchange").touch()  # created, not yet written

    assert ch.get_table("celery.pidbox") == []
