"""What a notification says: the generic JSON webhook body and a Slack-compatible message.

Pure functions of an ``Outcome`` (or of a restore) and of what the receiver looked up (who,
the admin link, the moment): no settings, no network. Both formats tell the same things,
blockers grouped as every output groups them (``output/blockers.py``) and capped at a
screenful. Task arguments are never sent: a webhook lands in chat rooms and third-party logs.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskmaster.gate.outcome import Outcome
from taskmaster.gate.rules import Verdict
from taskmaster.humanize import clock, duration, plural, some
from taskmaster.output.blockers import SCREENFUL, BlockerRow, blocker_table, counted

# The JSON body's version: a receiver checks it, and a change of meaning raises it (new keys
# may appear without it changing, as in the --json report).
SCHEMA = 1
ERROR_CHARS = 500  # an error sentence is a sentence; a chat message stays a message

HEADLINES = {
    Verdict.CLEAR: (":white_check_mark:", "Deploy clear"),
    Verdict.BLOCKED: (":no_entry:", "Deploy blocked"),
    Verdict.INTERRUPTED: (":octagonal_sign:", "Gate interrupted"),
    Verdict.ERROR: (":x:", "Gate failed"),
}


@dataclass(frozen=True)
class Restore:
    """A restore that a person asked for (``resume_consumers``, the admin's button)."""

    run_id: int | None
    by: str  # "resume_consumers" or "admin"
    who: str  # the admin user, or user@host (pid) of the command
    workers: tuple[str, ...]
    problems: tuple[str, ...]
    broker: str = ""


# -- the gate's verdict ------------------------------------------------------------------


def verdict_json(
    outcome: Outcome, *, who: str, link: str | None, sent_at: datetime
) -> dict[str, Any]:
    """The JSON webhook's body for a gate's verdict."""
    rows, rest = blocker_table(outcome.blockers, rows=SCREENFUL)
    return {
        "schema": SCHEMA,
        "event": str(outcome.verdict),
        "verdict": str(outcome.verdict),
        "exit_code": int(outcome.exit_code),
        "run_id": outcome.run_id,
        "summary": verdict_headline(outcome, who=who),
        "requested_by": who,
        "broker": outcome.broker,  # masked by the gate
        "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(),
        "duration_seconds": round(_seconds(outcome), 1),
        "workers": [w.hostname for w in outcome.workers],
        "restored": outcome.restored,
        "restore_problems": list(outcome.restore_problems or []),
        "hold_until": outcome.hold_until.isoformat() if outcome.hold_until else None,
        "signal": _signal_name(outcome.signum),
        "error": _error(outcome),
        "blocker_count": len(outcome.blockers),
        "blockers": [_row_json(row) for row in rows],
        "more_blockers": None
        if rest is None
        else {
            "workers": rest.workers,
            "task_names": rest.names,
            "blockers": rest.blockers,
            "text": rest.line(),
        },
        "link": link,
        "sent_at": sent_at.isoformat(),
    }


def verdict_slack(outcome: Outcome, *, who: str, link: str | None) -> dict[str, Any]:
    """A Slack message (``{"text": mrkdwn}``; Mattermost and Rocket.Chat read it too)."""
    emoji, _ = HEADLINES[outcome.verdict]
    lines = [f"{emoji} {_md(verdict_headline(outcome, who=who), bold_head=True)}"]
    context = [f"broker {outcome.broker}"] if outcome.broker else []
    if outcome.workers:
        context.append(plural(len(outcome.workers), "worker") + " drained")
    if outcome.blockers:
        context.append(counted(outcome.blockers))
    if context:
        text = ", ".join(context)
        lines.append(_escape(text[:1].upper() + text[1:]))
    if outcome.failure is not None:
        lines.append(f"> {_escape(_error(outcome) or '')}")
    rows, rest = blocker_table(outcome.blockers, rows=SCREENFUL)
    lines += [f"• {_row_text(row)}" for row in rows]
    if rest is not None:
        lines.append(_escape(rest.line()))
    lines += [f"• not restored: {_escape(p)}" for p in outcome.restore_problems or []]
    if link:
        lines.append(_link(link, f"Gate run #{outcome.run_id}"))
    return {"text": "\n".join(lines)}


def verdict_headline(outcome: Outcome, *, who: str) -> str:
    """One sentence: the verdict, the run, who ran it, how long, and where the consumers are."""
    _, title = HEADLINES[outcome.verdict]
    if outcome.signum:
        title += f" by {_signal_name(outcome.signum)}"
    if outcome.failure is not None or outcome.signum or outcome.restore_problems:
        title += f" (exit {int(outcome.exit_code)})"
    run = (
        f"gate run #{outcome.run_id} by {who}"
        if outcome.run_id
        else f"gate by {who}, no run recorded"
    )
    return f"{title}: {run}, after {duration(_seconds(outcome))}: {_consumers(outcome)}."


def _consumers(outcome: Outcome) -> str:
    if outcome.restore_problems:
        return f"consumers NOT all restored ({plural(len(outcome.restore_problems), 'problem')})"
    if outcome.restored:
        return "consumers restored"
    if outcome.verdict == Verdict.CLEAR:
        if not outcome.workers:
            return "no worker to drain"
        held = f" until {clock(outcome.hold_until)}" if outcome.hold_until else ""
        return f"safe to stop the workers, drained{held}"
    return "nothing touched"  # an error before the drain (configuration, broker, lock)


def _row_json(row: BlockerRow) -> dict[str, Any]:
    # Built field by field: BlockerRow also carries the oldest task's arguments, never sent.
    return {
        "task": None if row.is_worker else row.subject,
        "workers": [row.subject] if row.is_worker else list(row.workers),
        "count": row.count,
        "states": dict(row.states),
        "oldest_seconds": None if row.oldest is None else round(row.oldest, 1),
        "classification": row.classification or None,
        "reason": row.reason,
    }


def _row_text(row: BlockerRow) -> str:
    if row.is_worker:
        return f"worker `{_escape(row.subject)}` ({row.states_text}): {_escape(row.reason)}"
    oldest = f", oldest running {duration(row.oldest)}" if row.oldest is not None else ""
    workers = _escape(some(row.workers, 3))
    return (
        f"`{_escape(row.subject)}`: {row.states_text} on {workers}{oldest} ({row.classification})"
    )


def _seconds(outcome: Outcome) -> float:
    return max(0.0, (outcome.finished_at - outcome.started_at).total_seconds())


def _signal_name(signum: int | None) -> str | None:
    if not signum:
        return None
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _error(outcome: Outcome) -> str | None:
    if outcome.failure is None:
        return None
    text = str(outcome.failure)
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


# -- a restore a person asked for ----------------------------------------------------------


def restored_json(restore: Restore, *, link: str | None, sent_at: datetime) -> dict[str, Any]:
    """The JSON webhook's body for consumers restored by ``resume_consumers`` or the admin."""
    return {
        "schema": SCHEMA,
        "event": "restored",
        "run_id": restore.run_id,
        "summary": restored_headline(restore),
        "by": restore.by,
        "restored_by": restore.who,
        "broker": restore.broker,
        "workers": list(restore.workers),
        "complete": not restore.problems,
        "problems": list(restore.problems),
        "link": link,
        "sent_at": sent_at.isoformat(),
    }


def restored_slack(restore: Restore, *, link: str | None) -> dict[str, Any]:
    emoji = ":warning:" if restore.problems else ":leftwards_arrow_with_hook:"
    lines = [f"{emoji} {_md(restored_headline(restore), bold_head=True)}"]
    lines += [f"• not restored: {_escape(p)}" for p in restore.problems]
    if link and restore.run_id:
        lines.append(_link(link, f"Gate run #{restore.run_id}"))
    return {"text": "\n".join(lines)}


def restored_headline(restore: Restore) -> str:
    run = f"gate run #{restore.run_id}" if restore.run_id else "a gate run"
    how = "from the admin" if restore.by == "admin" else "by resume_consumers"
    workers = some(list(restore.workers), 5) if restore.workers else "no worker"
    if restore.problems:
        problems = plural(len(restore.problems), "problem")
        return f"Consumers NOT all restored: {run}, {how}, {restore.who}: {problems} ({workers})."
    return f"Consumers restored: {run}, {how}, {restore.who}: {workers} consume again."


# -- Slack's mrkdwn --------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as it is."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _md(sentence: str, *, bold_head: bool) -> str:
    """The sentence escaped, its head (up to the first colon) in bold."""
    head, sep, tail = sentence.partition(": ")
    if not bold_head or not sep:
        return _escape(sentence)
    return f"*{_escape(head)}*: {_escape(tail)}"


def _link(url: str, label: str) -> str:
    return f"<{url.replace('>', '%3E').replace('|', '%7C')}|{_escape(label)}>"
