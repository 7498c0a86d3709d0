"""A request to stop a gate, set by a signal handler and honoured between steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class StopRequest:
    """Set by a signal handler; read by the drain between steps."""

    signum: int | None = None

    def __call__(self, signum: int, frame: Any = None) -> None:
        if self.signum is None:  # a second Ctrl-C must not cut the restore short
            self.signum = signum
