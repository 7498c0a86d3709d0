"""``celery taskmaster``: Taskmaster's part of Celery's command line.

Celery's CLI loads this module at every start (an entry point of the ``celery.commands``
group, declared in pyproject.toml). Loading it registers ``taskmaster.tasks``' remote-control
commands in the CLI's own process, which a project that only autodiscovers its tasks never
imports there, so the documented lines work: ``celery -A proj inspect
taskmaster_lease_status`` and ``celery -A proj control taskmaster_release``. Like
``taskmaster.tasks``, it imports Celery only, never Django.
"""

from __future__ import annotations

from typing import Any

import click

from taskmaster import tasks  # noqa: F401  (registers the remote-control commands here)


@click.command(name="taskmaster")
@click.option(
    "--release", is_flag=True, help="End every drain lease now: the workers consume again."
)
@click.option(
    "--timeout", type=float, default=1.0, show_default=True, help="Seconds to wait for replies."
)
@click.pass_context
def taskmaster(ctx: Any, release: bool, timeout: float) -> None:
    """The drain lease each worker holds (taskmaster.tasks), or --release to end them."""
    app = ctx.obj.app
    command = "taskmaster_release" if release else "taskmaster_lease_status"
    replies = app.control.broadcast(command, reply=True, timeout=timeout) or []
    if not replies:
        raise click.ClickException("no worker answered")
    for answer in replies:
        for worker, reply in sorted(answer.items()):
            click.echo(f"{worker}: {_said(reply)}")


def _said(reply: Any) -> str:
    if not isinstance(reply, dict):
        return str(reply)
    if "error" in reply:
        return f"{reply['error']} (it does not run taskmaster.tasks)"
    if "ok" in reply:
        return str(reply["ok"])
    if not reply:
        return "no lease: consuming as configured"
    queues = ", ".join(reply.get("queues", [])) or "none"
    return (
        f"drained by gate run #{reply['run']} ({reply.get('gate') or '?'}), the lease runs out in "
        f"{reply['expires_in']:g} s; it gives back {queues}"
    )
