"""Django signals of a gate's life, the way a project hears about it (docs/observability.md).

Every signal's sender is ``GateRun`` (the model class); its arguments are keywords:

- ``gate_started``: ``run`` (the ``GateRun``, recorded), ``workers`` (the node names about to
  be drained), ``note`` (a callable: a sentence for the person who runs the gate, kept in the
  run's record). Sent before the first consumer is cancelled.
- ``gate_polled``: ``run``, ``verdict`` (``None`` while the gate waits, else the verdict this
  poll reached), ``blockers`` (the ``Blocker`` tuple of this poll), ``at`` (an aware datetime).
  Sent after every full poll, before the gate waits: a slow receiver slows the gate.
- ``consumers_restored``: ``run``, ``workers`` (the node names put back), ``problems`` (what
  could not be restored; empty when every consumer is back and verified), ``by`` (``"gate"``,
  ``"resume_consumers"`` or ``"admin"``), ``note`` (as above). Sent after the restore is
  verified, never before.
- ``gate_finished``: ``run`` (``None`` when the gate ended before it recorded one: a
  configuration error, the broker out of reach, another drain open), ``outcome`` (the
  ``Outcome``, as ``--json`` reports it), ``note`` (as above). Sent once the verdict is
  recorded and, unless it cleared, the consumers are restored. Not sent for a dry run.

A receiver that raises is logged (with the run's id) and changes nothing: not the restore, not
the exit code. The built-in metrics and notifications are receivers of these signals.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("taskmaster")

gate_started = Signal()
gate_polled = Signal()
consumers_restored = Signal()
gate_finished = Signal()


def send(signal: Signal, sender: Any, **arguments: Any) -> None:
    """Send ``signal`` to every receiver; one that raises is logged, and the rest still run."""
    for receiver, response in signal.send_robust(sender, **arguments):
        if isinstance(response, Exception):
            logger.error(
                "a receiver of taskmaster.signals.%s failed (%s): %r",
                _NAMES.get(id(signal), "?"),
                getattr(receiver, "__qualname__", receiver),
                response,
                exc_info=response,
            )


_NAMES = {
    id(signal): name
    for name, signal in [
        ("gate_started", gate_started),
        ("gate_polled", gate_polled),
        ("consumers_restored", consumers_restored),
        ("gate_finished", gate_finished),
    ]
}
