"""The receivers that tell a verdict, or a restore a person asked for, to the destinations
of ``TASKMASTER["NOTIFICATIONS"]`` whose ``ON`` names it.

They run in the gate's (or the resume's) process once its consumers are back, wait at most
``TASKMASTER["NOTIFICATION_TIMEOUT"]`` for every destination together, and never raise: a
failed notification is a note for the person who ran the gate and a WARNING in the log,
never a different exit code.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.dispatch import receiver
from django.urls import NoReverseMatch, get_script_prefix, reverse

from taskmaster.conf import app_settings
from taskmaster.gate.outcome import Outcome
from taskmaster.models import GateRun
from taskmaster.notifications import payloads
from taskmaster.notifications.delivery import Post, deliver, post
from taskmaster.signals import consumers_restored, gate_finished

logger = logging.getLogger("taskmaster")  # the logger whose records carry the run id (log.py)

FORMATS = ("json", "slack")

Note = Callable[[str], None]


@dataclass(frozen=True)
class Destination:
    url: str
    format: str  # json | slack
    on: frozenset[str]
    secret: str | None


def destinations(event: str) -> list[Destination]:
    """The configured destinations that want ``event``. The gate and ``resume_consumers``
    refuse to start on a wrong entry (taskmaster.E013); one that slips by anyway (settings
    changed in a running process) is skipped with a WARNING, and the others still go."""
    found = []
    for index, entry in enumerate(app_settings.NOTIFICATIONS):
        try:
            destination = _destination(entry)
        except ValueError as exc:
            logger.warning("TASKMASTER['NOTIFICATIONS'][%d] ignored: %s", index, exc)
            continue
        if event in destination.on:
            found.append(destination)
    return found


def _destination(entry: Any) -> Destination:
    if not isinstance(entry, dict) or not isinstance(entry.get("URL"), str) or not entry["URL"]:
        raise ValueError('not a dict with a "URL"')
    kind = entry.get("FORMAT", "json")
    if kind not in FORMATS:
        raise ValueError(f"FORMAT {kind!r} is not one of {', '.join(FORMATS)}")
    on = entry.get("ON")
    if not isinstance(on, (list, tuple)):  # a string would match "clear" in "unclear"
        raise ValueError("ON must be a list of the verdicts to tell")
    secret = entry.get("SECRET")
    return Destination(entry["URL"], kind, frozenset(on), str(secret) if secret else None)


@receiver(gate_finished, dispatch_uid="taskmaster.notifications.verdict")
def tell_verdict(
    sender: Any,
    run: GateRun | None = None,
    outcome: Outcome | None = None,
    note: Note | None = None,
    **kwargs: Any,
) -> None:
    if outcome is None or outcome.dry_run:
        return
    event = str(outcome.verdict)
    who = run.requester if run is not None else this_process()
    link = admin_link(outcome.run_id)

    def body(destination: Destination, sent_at: datetime) -> dict[str, Any]:
        if destination.format == "slack":
            return payloads.verdict_slack(outcome, who=who, link=link)
        return payloads.verdict_json(outcome, who=who, link=link, sent_at=sent_at)

    run_id = outcome.run_id
    _notify(event, body, note, f"the verdict of {_run(run_id)} ({event})")


@receiver(consumers_restored, dispatch_uid="taskmaster.notifications.restored")
def tell_restore(
    sender: Any,
    run: GateRun | None = None,
    workers: Any = (),
    problems: Any = (),
    by: str = "gate",
    note: Note | None = None,
    **kwargs: Any,
) -> None:
    if by == "gate":
        return  # the gate's own restore is told by its verdict
    restore = payloads.Restore(
        run_id=run.pk if run is not None else None,
        by=by,
        who=_resumer(run) if by == "admin" else this_process(),
        workers=tuple(sorted(workers or ())),
        problems=tuple(problems or ()),
        broker=run.broker if run is not None else "",
    )
    link = admin_link(restore.run_id)

    def body(destination: Destination, sent_at: datetime) -> dict[str, Any]:
        if destination.format == "slack":
            return payloads.restored_slack(restore, link=link)
        return payloads.restored_json(restore, link=link, sent_at=sent_at)

    _notify("restored", body, note, f"the restore of {_run(restore.run_id)}")


def _notify(
    event: str,
    body: Callable[[Destination, datetime], dict[str, Any]],
    note: Note | None,
    what: str,
) -> None:
    """Send ``event`` to the destinations that want it; say and log how each went."""
    try:
        wanted = destinations(event)
        if not wanted:
            return
        sent_at = datetime.now(UTC)
        posts: list[Post] = [
            post(
                d.url,
                body(d, sent_at),
                event=event,
                sent_at=sent_at,
                # Slack-style hooks check no signature: only JSON bodies are signed.
                secret=d.secret if d.format == "json" else None,
            )
            for d in wanted
        ]
        for delivery in deliver(posts, timeout=app_settings.NOTIFICATION_TIMEOUT):
            if delivery.ok:
                logger.info(
                    "notification of %s sent to %s (%s)", what, delivery.url, delivery.reason
                )
                continue
            text = (
                f"notification to {delivery.url} failed: {delivery.reason} ({delivery.tries_text})"
            )
            logger.warning("%s", text)
            if note is not None:
                note(text)
    except Exception:  # a bug of ours: logged with its traceback, the gate's ending unchanged
        logger.exception("notifications of %s failed unexpectedly", what)


def admin_link(run_id: int | None) -> str | None:
    """The gate run's admin page under ``TASKMASTER["SITE_URL"]``, or None."""
    site = app_settings.SITE_URL
    if not site or not run_id:
        return None
    try:
        path = reverse("admin:taskmaster_gaterun_change", args=[run_id])
    except NoReverseMatch:  # a project without the admin mounted
        return None
    # In a request, reverse() puts the script prefix in front; SITE_URL already says where
    # the site lives, prefix included.
    prefix = get_script_prefix()
    if prefix != "/" and path.startswith(prefix):
        path = "/" + path[len(prefix) :]
    return site + path


def this_process() -> str:
    """user@host (pid N) of this process, as a gate run records its opener."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "?"
    return f"{user}@{socket.gethostname()} (pid {os.getpid()})"


def _resumer(run: GateRun | None) -> str:
    if run is None or not run.resumed_by:
        return "an admin user"
    where = f" from {run.resumed_from}" if run.resumed_from else ""
    return f"{run.resumed_by} (admin{where})"


def _run(run_id: int | None) -> str:
    return f"gate run #{run_id}" if run_id else "a gate with no run recorded"
