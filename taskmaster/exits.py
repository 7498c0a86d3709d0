"""The command contract's exit codes, and the errors that end a gate with one of them.

Every way a gate can end maps to one code here (docs/usage.md has the table); the errors
carry their code, so the entry point (``api.py``) turns any of them into an outcome without
a table of its own.
"""

from __future__ import annotations

import enum
import signal


class ExitCode(enum.IntEnum):
    CLEAR = 0  # safe to stop the workers
    BLOCKED = 1  # deadline passed; consumers restored and verified; blockers listed
    CONFIGURATION = 2  # options, settings, broker transport, database, no workers; nothing touched
    BROKER_UNAVAILABLE = 3  # cannot reach the broker, or it refuses the login; nothing touched
    DRAIN_OPEN = 4  # another drain holds these workers
    RESTORE_INCOMPLETE = 5  # some consumers could not be restored (listed); drain stays open
    GATE_FAILED = 6  # the gate failed mid-drain; consumers restored first; cause logged


def signal_exit(signum: int) -> int:
    """128 + N, the shell's code for a process stopped by signal N."""
    return 128 + int(signal.Signals(signum))


class GateError(Exception):
    """An error that ends a gate; ``str()`` is the sentence a person reads."""

    exit_code = ExitCode.GATE_FAILED


class ConfigurationError(GateError):
    """Options, settings, broker transport, database: something to fix before a gate can run."""

    exit_code = ExitCode.CONFIGURATION


class BrokerUnavailable(GateError):
    """The broker cannot be reached; the message says which one (password masked)."""

    exit_code = ExitCode.BROKER_UNAVAILABLE


class DrainOpen(GateError):
    """Another drain holds some of these workers; the message says whose and how to recover."""

    exit_code = ExitCode.DRAIN_OPEN


class GateFailed(GateError):
    """The gate could not go on after it touched the workers (it restores them first)."""

    exit_code = ExitCode.GATE_FAILED
