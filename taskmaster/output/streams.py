"""Output streams whose writes can never raise.

A gate's output is the least important thing it does: a closed pipe (``| head -1``), a
terminal that went away (SIGHUP) or a full disk must never stand between a drain and its
restore. A ``SafeStream`` swallows the error of a failed write, goes quiet for good, and
points the file descriptor at ``/dev/null`` so that the interpreter's own flush at exit
does not fail either (Python would print "Exception ignored" and exit 120).
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import IO, Any


class SafeStream(io.TextIOBase):
    """A text stream that stops writing, silently, after its first failed write."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__()
        self.stream = stream if stream is not None else io.StringIO()
        # Python makes sys.stdout None when its file descriptor was closed at start (>&-).
        self.broken = stream is None

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self.stream.write(text)
            except (OSError, ValueError):  # EPIPE, EIO, a closed file
                self._give_up()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self.stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def isatty(self) -> bool:
        if self.broken:
            return False
        try:
            return self.stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.stream, "encoding", None) or "utf-8"

    def __getattr__(self, name: str) -> Any:  # what rich and Django's OutputWrapper look up
        return getattr(self.stream, name)

    def _give_up(self) -> None:
        self.broken = True
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)


def safe(stream: IO[str] | SafeStream | None) -> SafeStream:
    return stream if isinstance(stream, SafeStream) else SafeStream(stream)
