"""The metrics pushed to a Pushgateway and written for node_exporter, as a gate goes.

Receivers of the gate's signals (``taskmaster/signals.py``): when a drain opens, when its
verdict is recorded, and when a resume restores it, the metrics are read once from the
database (``collector.py``) and pushed to ``METRICS["PUSHGATEWAY"]`` and/or written to
``METRICS["TEXTFILE"]``. A short-lived gate cannot be scraped: it hands its numbers over.

Nothing here may cost a gate more than a few seconds or change its exit: a failure is a
sentence for the person running the gate (``note``) and a warning in the log, never an
exception. Without ``METRICS`` the receivers return at once and never import
``prometheus_client``, which is an optional dependency (the extra ``metrics``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlsplit

from django.db import DatabaseError
from django.dispatch import receiver

from taskmaster.conf import app_settings
from taskmaster.credentials import masked, without_credentials
from taskmaster.models import GateRun
from taskmaster.signals import consumers_restored, gate_finished, gate_started

logger = logging.getLogger("taskmaster")

# A Pushgateway that does not answer costs a gate at most this, per push.
PUSH_TIMEOUT = 3.0
INSTALL = 'pip install "django-taskmaster[metrics]"'
MISSING = (
    "metrics: not pushed or written: prometheus_client is not installed "
    f"(TASKMASTER['METRICS'] is set): {INSTALL}"
)

Note = Callable[[str], None]


@receiver(gate_started, sender=GateRun, dispatch_uid="taskmaster.metrics.gate_started")
def on_gate_started(sender: Any, *, run: GateRun, note: Note, **kwargs: Any) -> None:
    export(note)  # a drain is open from now on, its workers held


@receiver(gate_finished, sender=GateRun, dispatch_uid="taskmaster.metrics.gate_finished")
def on_gate_finished(sender: Any, *, run: GateRun | None, note: Note, **kwargs: Any) -> None:
    if run is not None:  # a gate that recorded no run changed no number
        export(note)


@receiver(consumers_restored, sender=GateRun, dispatch_uid="taskmaster.metrics.restored")
def on_consumers_restored(sender: Any, *, by: str, note: Note, **kwargs: Any) -> None:
    # A gate's own restore comes before its verdict is recorded: gate_finished pushes then.
    if by != "gate":
        export(note)


def export(note: Note) -> None:
    """Push and/or write the metrics, as configured; never raises."""
    config = app_settings.METRICS
    gateway, textfile = config["PUSHGATEWAY"], config["TEXTFILE"]
    if not gateway and not textfile:
        return
    try:
        from taskmaster.metrics.collector import Reading, registry
    except ImportError:
        logger.warning("%s", MISSING)
        note(MISSING)
        return
    try:
        reading = registry(Reading())
    except Exception as exc:
        failed(
            note,
            f"metrics: could not read the gate runs: {reason(exc)}",
            expected=isinstance(exc, DatabaseError),
        )
        return
    if gateway:
        try:
            push(str(gateway), str(config["JOB"] or "taskmaster"), reading)
        except Exception as exc:
            failed(
                note,
                f"metrics: could not push to {masked(str(gateway))}: {reason(exc, str(gateway))}",
                expected=isinstance(exc, OSError),
            )
    if textfile:
        try:
            write(str(textfile), reading)
        except Exception as exc:
            failed(
                note,
                f"metrics: could not write {textfile}: {reason(exc)}",
                expected=isinstance(exc, OSError),
            )


def push(gateway: str, job: str, registry: Any) -> None:
    """PUT the registry as the job's group: it replaces what the last push said (a blocker
    that is gone is gone). Credentials in the URL go in a header, never in the URL used."""
    from prometheus_client import push_to_gateway
    from prometheus_client.exposition import default_handler

    url, authorization = without_credentials(gateway)

    def handler(url: str, method: str, timeout: Any, headers: Any, data: bytes) -> Any:
        extra = [("Authorization", authorization)] if authorization else []
        return default_handler(url, method, timeout, [*headers, *extra], data)

    push_to_gateway(url, job=job, registry=registry, timeout=PUSH_TIMEOUT, handler=handler)


def write(path: str, registry: Any) -> None:
    """Written whole or not at all (a temporary file beside it, then a rename), so
    node_exporter never reads half a file; it reads only names that end in ``.prom``."""
    from prometheus_client import write_to_textfile

    write_to_textfile(path, registry)


def reason(exc: BaseException, url: str = "") -> str:
    """A failure in a few words: urllib's wrapped socket error ("Connection refused", "timed
    out"), an HTTP status, a line; never the password of ``url``."""
    if isinstance(exc, HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    else:
        cause = getattr(exc, "reason", None)  # urllib's URLError wraps the socket's error
        if isinstance(cause, BaseException):
            exc = cause
        elif cause:
            exc = OSError(str(cause))
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    # A database's error runs on over lines (the statement, a hint): the first says it.
    text = text.strip().partition("\n")[0] or type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "**") if password else text


def failed(note: Note, sentence: str, *, expected: bool = True) -> None:
    """Say it to the person running the gate and to the log; an expected failure (the network,
    the disk) without a traceback, anything else with one."""
    logger.warning("%s", sentence, exc_info=not expected)
    note(sentence)
