"""The live view on a real terminal: a pseudo-terminal, and pyte reading it as a terminal would.

The gate runs as a subprocess on a pty of 140x40 against a real worker; every byte it writes
goes through a terminal emulator with scrollback, so what a person would see (and what a
redraw leaves behind) is what the test reads.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from typing import Any

import pyte

from taskmaster.models import GateRun
from tests.support.lab import ROOT, Lab

COLUMNS, LINES = 140, 40


class Terminal:
    """A pty whose output a pyte screen (with scrollback) reads."""

    def __init__(self) -> None:
        self.screen = pyte.HistoryScreen(COLUMNS, LINES, history=2000)
        self.stream = pyte.ByteStream(self.screen)
        self.master, self.slave = pty.openpty()
        size = struct.pack("HHHH", LINES, COLUMNS, 0, 0)
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, size)

    def run(self, lab: Lab, *args: str) -> subprocess.Popen[bytes]:
        env = {**lab.env, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "prepare_deploy", *args],
            cwd=ROOT,
            env=env,
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
        )
        os.close(self.slave)
        return proc

    def read(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                return
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the gate exited and closed its side
                return
            if not data:
                return
            self.stream.feed(data)

    def read_until(self, seen: Callable[[list[str]], Any], timeout: float = 30) -> Any:
        """Read until ``seen(self.lines())`` is true; return what it returned."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := seen(self.lines()):
                return found
            self.read(0.2)
        raise AssertionError("not on the terminal:\n" + "\n".join(self.lines()))

    def lines(self) -> list[str]:
        """Every line the terminal holds: the scrollback, then the screen."""
        scrolled = [
            "".join(line[x].data for x in range(COLUMNS)).rstrip()
            for line in self.screen.history.top
        ]
        return scrolled + [line.rstrip() for line in self.screen.display]


def test_the_live_view_redraws_in_place_and_ends_with_the_verdict(lab: Lab) -> None:
    worker = lab.start_worker("w1")
    lab.send("generate_report", 60)
    lab.wait_active(worker.name)
    terminal = Terminal()
    gate = terminal.run(lab, "--interval", "1", "--timeout", "6")

    # The view with its blocker, then redrawn once more (the time left has changed).
    shown = terminal.read_until(lambda lines: [x for x in lines if x.startswith("time left: ")])
    terminal.read_until(lambda lines: any("generate_report" in x for x in lines) and not (
        {x for x in lines if x.startswith("time left: ")} <= set(shown)
    ))  # fmt: skip
    during = terminal.lines()
    terminal.read(20)
    assert gate.wait(timeout=30) == 1
    after = terminal.lines()

    # One picture, redrawn in place: a single title of each table, anywhere on the terminal.
    assert [line for line in during if line.startswith("Workers")] == ["Workers"]
    assert [line for line in during if line.startswith("Blockers")] == ["Blockers, worst first"]
    assert any(worker.name in line and "drained, 1 blocker(s)" in line for line in during)
    assert any("project.tasks.generate_report" in line and "1 active" in line for line in during)
    assert any(line.startswith("time left: ") for line in during)
    # At the end the live view is gone and the verdict panel says what happened.
    assert not any(line.startswith(("Workers", "Blockers", "time left")) for line in after)
    (title,) = [line for line in after if "BLOCKED" in line]
    run = GateRun.objects.get()
    assert f"BLOCKED — verdict: blocked (exit 1), gate run #{run.pk}" in title
    assert any("Do not deploy now: consumers are restored." in line for line in after)
    assert lab.active_queues() == {worker.name: [lab.queue]}
