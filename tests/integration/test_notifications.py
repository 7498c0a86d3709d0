"""Notifications of verdicts and restores, sent to a real HTTP server in the test
(``tests/support/webhook.py``): first the delivery on its own (retries, the bound, what is never
followed or said), then real gates and ``resume_consumers`` against RabbitMQ and real
``celery worker`` processes, with the destinations in ``tests/support/notify_settings.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from taskmaster import log
from taskmaster.gate.outcome import Outcome
from taskmaster.gate.rules import Blocker, Verdict
from taskmaster.models import GateRun
from taskmaster.notifications.delivery import Post, deliver, post
from taskmaster.notifications.receivers import tell_verdict
from tests.support.lab import Lab, drained, wait_for
from tests.support.webhook import Webhook

FAST = ("--interval", "1")
NOTIFY = "tests.support.notify_settings"
SITE = "https://ops.example.com"
MARK = "xyzzy"  # in every secret part of a URL: it must appear nowhere


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()


def notify_env(destinations: list[dict[str, Any]], *, timeout: float = 10) -> dict[str, str]:
    return {
        "TASKMASTER_NOTIFICATIONS": json.dumps(destinations),
        "TASKMASTER_SITE_URL": SITE,
        "TASKMASTER_NOTIFICATION_TIMEOUT": str(timeout),
    }


def a_post(url: str) -> Post:
    sent_at = datetime.now(UTC)
    return post(url, {"schema": 1, "event": "blocked"}, event="blocked", sent_at=sent_at)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the delivery on its own -----------------------------------------------------------------


def test_a_server_error_or_429_is_tried_twice_a_refusal_once_and_a_redirect_not_followed(
    webhook: Webhook,
) -> None:
    kinds = ["ok", "fail", "busy", "gone", "moved"]

    results = deliver([a_post(webhook.url(f"{k}/{MARK}")) for k in kinds], timeout=10)

    assert {k: (d.ok, d.reason, d.tries) for k, d in zip(kinds, results, strict=True)} == {
        "ok": (True, "HTTP 204", 1),
        "fail": (False, "HTTP 500", 2),
        "busy": (False, "HTTP 429", 2),
        "gone": (False, "HTTP 404", 1),
        "moved": (False, "HTTP 307: redirects are not followed", 1),
    }
    assert {k: len(webhook.of_kind(k)) for k in kinds} == {
        "ok": 1,  # the redirect's target, /ok/moved, was never asked
        "fail": 2,
        "busy": 2,
        "gone": 1,
        "moved": 1,
    }
    assert results[1].url == webhook.url("fail/***")


def test_a_refused_connection_is_tried_twice_and_only_http_is_ever_posted() -> None:
    port = closed_port()

    refused, local_file = deliver(
        [a_post(f"http://127.0.0.1:{port}/hook/{MARK}"), a_post("file:///etc/hostname")],
        timeout=5,
    )

    assert (refused.ok, refused.reason, refused.tries) == (False, "connection refused", 2)
    assert refused.url == f"http://127.0.0.1:{port}/hook/***"
    assert (local_file.ok, local_file.reason, local_file.tries) == (
        False, "not an http(s) URL", 1,
    )  # fmt: skip


def test_endpoints_that_hang_or_trickle_cost_at_most_the_bound(webhook: Webhook) -> None:
    started = time.monotonic()

    hang, trickle = deliver(
        [a_post(webhook.url(f"hang/{MARK}")), a_post(webhook.url(f"trickle/{MARK}"))], timeout=3
    )

    # The trickle never lets a socket timeout fire: only the shared bound ends the wait.
    assert time.monotonic() - started < 3 + 10
    assert (trickle.ok, trickle.reason, trickle.tries) == (False, "no answer within 3 s", 1)
    # The silent one timed out, was tried again, and timed out again within the bound.
    assert not hang.ok and hang.tries == 2
    assert hang.reason in ("timed out", "no answer within 3 s")
    assert len(webhook.of_kind("hang")) == 2


def test_a_password_in_the_url_is_sent_as_basic_auth_and_never_named(webhook: Webhook) -> None:
    url = webhook.url(f"ok/{MARK}").replace("://", f"://deployer:p%40ss-{MARK}@")

    (sent,) = deliver([a_post(url)], timeout=5)

    assert sent.ok, sent
    assert sent.url == webhook.url("ok/***").replace("://", "://deployer:**@")
    (received,) = webhook.received
    expected = base64.b64encode(f"deployer:p@ss-{MARK}".encode()).decode()
    assert received.headers["Authorization"] == f"Basic {expected}"


def test_the_receiver_notes_each_failure_and_logs_it_with_the_run_id(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="taskmaster")
    start = datetime.now(UTC) - timedelta(seconds=30)
    outcome = Outcome(
        Verdict.BLOCKED,
        start,
        30.0,
        1.0,
        60.0,
        run_id=77,
        restore_problems=[],
        blockers=(Blocker("t1", "app.report", "w1@a", "active", 12.0, "blocking", "lost"),),
    )
    destinations = [
        {"URL": webhook.url(f"ok/{MARK}"), "FORMAT": "slack", "ON": ["blocked"]},
        {"URL": webhook.url(f"fail/{MARK}?token={MARK}"), "ON": ["blocked"]},
        {"URL": webhook.url("gone/clear-only"), "ON": ["clear"]},
    ]
    notes: list[str] = []

    with override_settings(TASKMASTER={"NOTIFICATIONS": destinations}), log.run_scope(77):
        tell_verdict(GateRun, run=None, outcome=outcome, note=notes.append)

    failed = f"notification to {webhook.url('fail/***')}?*** failed: HTTP 500 (2 tries)"
    assert notes == [failed]
    records = [(r.levelname, r.getMessage(), r.run_id, r.exc_info) for r in caplog.records]  # type: ignore[attr-defined]
    assert records == [
        (
            "INFO",
            "notification of the verdict of gate run #77 (blocked) sent to "
            f"{webhook.url('ok/***')} (HTTP 204)",
            77,
            None,
        ),
        ("WARNING", failed, 77, None),
    ]
    assert not webhook.of_kind("gone")  # its ON has no "blocked"
    assert MARK not in caplog.text


# -- real gates --------------------------------------------------------------------------------


def test_a_blocked_gate_posts_json_and_slack_once_its_consumers_are_back(
    lab: Lab, webhook: Webhook
) -> None:
    w1 = lab.start_worker("w1")
    lab.send("generate_report", 120, kwargs={"customer": f"hunter2-{MARK}"})
    lab.wait_active(w1.name)
    before = lab.active_queues()
    webhook.on_request = lab.active_queues  # what the workers consume as a request arrives
    env = notify_env(
        [
            {"URL": webhook.url("ok/json"), "ON": ["blocked"], "SECRET": "s3cr3t"},
            {"URL": webhook.url("ok/slack"), "FORMAT": "slack", "ON": ["error", "blocked"]},
            {"URL": webhook.url("ok/clear-only"), "ON": ["clear", "restored"]},
        ]
    )

    result = lab.manage(
        "prepare_deploy", *FAST, "--timeout", "3", "--json", settings=NOTIFY, env=env
    )

    assert result.code == 1, result.text
    run = GateRun.objects.get()
    link = f"{SITE}/admin/taskmaster/gaterun/{run.pk}/change/"
    by_path = {r.path: r for r in webhook.received}
    assert set(by_path) == {"/ok/json", "/ok/slack"}  # not the clear-only one
    for request in by_path.values():
        assert request.seen == before  # posted after the restore, never before
        assert request.headers["User-Agent"].startswith("taskmaster/")
        assert MARK not in request.body.decode()  # task arguments are never sent

    signed = by_path["/ok/json"]
    digest = hmac.new(b"s3cr3t", signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["X-Taskmaster-Signature"] == f"sha256={digest}"
    body = signed.json()
    assert (body["schema"], body["event"], body["verdict"], body["exit_code"]) == (
        1, "blocked", "blocked", 1,
    )  # fmt: skip
    assert (body["run_id"], body["link"], body["restored"]) == (run.pk, link, True)
    assert body["requested_by"] == run.requester
    assert body["broker"] == lab.broker_label
    rows = [(b["task"], b["workers"], b["states"], b["classification"]) for b in body["blockers"]]
    assert rows == [("project.tasks.generate_report", [w1.name], {"active": 1}, "blocking")]

    text = by_path["/ok/slack"].json()["text"]
    assert text.startswith(f":no_entry: *Deploy blocked*: gate run #{run.pk} by ")
    assert f"• `project.tasks.generate_report`: 1 active on {w1.name}" in text
    assert f"<{link}|Gate run #{run.pk}>" in text


def test_a_clear_gate_posts_only_where_on_names_clear(lab: Lab, webhook: Webhook) -> None:
    w1 = lab.start_worker("w1")
    env = notify_env(
        [
            {"URL": webhook.url("ok/clear"), "ON": ["clear"]},
            {"URL": webhook.url("ok/slack-blocked"), "FORMAT": "slack", "ON": ["blocked"]},
            {"URL": webhook.url("ok/problems"), "ON": ["blocked", "error", "interrupted"]},
        ]
    )

    result = lab.manage(
        "prepare_deploy", *FAST, "--timeout", "30", "--json", settings=NOTIFY, env=env
    )

    assert result.code == 0, result.text
    (request,) = webhook.received
    body = request.json()
    assert (request.path, body["event"], body["exit_code"]) == ("/ok/clear", "clear", 0)
    assert (body["workers"], body["restored"], body["blockers"]) == ([w1.name], None, [])
    assert body["hold_until"] == result.report()["hold_until"]


def test_resume_after_a_killed_gate_posts_restored_once_the_consumers_are_back(
    lab: Lab, webhook: Webhook
) -> None:
    w1 = lab.start_busy_worker("w1")
    env = notify_env(
        [
            {"URL": webhook.url("ok/restored"), "ON": ["restored"]},
            {"URL": webhook.url("ok/slack"), "FORMAT": "slack", "ON": ["restored"]},
            {"URL": webhook.url("ok/verdicts"), "ON": ["blocked", "interrupted", "error"]},
        ]
    )
    gate = lab.start_gate(*FAST, "--timeout", "120", env={"DJANGO_SETTINGS_MODULE": NOTIFY, **env})
    wait_for(lambda: drained(lab, w1.name))
    gate.kill()  # SIGKILL: no verdict, no restore, no notification
    gate.wait()
    run = GateRun.objects.open().get(pid=gate.pid)
    webhook.on_request = lab.active_queues

    result = lab.manage("resume_consumers", settings=NOTIFY, env=env)

    assert result.code == 0, result.text
    by_path = {r.path: r for r in webhook.received}
    assert set(by_path) == {"/ok/restored", "/ok/slack"}  # a resume is no verdict
    assert all(r.seen == {w1.name: [lab.queue]} for r in by_path.values())
    body = by_path["/ok/restored"].json()
    assert (body["event"], body["run_id"], body["by"]) == ("restored", run.pk, "resume_consumers")
    assert (body["workers"], body["complete"], body["problems"]) == ([w1.name], True, [])
    assert re.fullmatch(rf".+@{re.escape(socket.gethostname())} \(pid \d+\)", body["restored_by"])
    assert body["link"] == f"{SITE}/admin/taskmaster/gaterun/{run.pk}/change/"
    text = by_path["/ok/slack"].json()["text"]
    assert text.startswith(
        f":leftwards_arrow_with_hook: *Consumers restored*: gate run #{run.pk}, by "
        "resume_consumers, "
    )
    assert f"{w1.name} consume again." in text


def test_failing_endpoints_change_no_exit_cost_at_most_the_bound_and_leak_no_secret(
    lab: Lab, webhook: Webhook, admin_client: Client
) -> None:
    lab.start_busy_worker("w1")
    bound = 4.0
    port = webhook.server.server_address[1]
    fail = f"http://deployer:pw-{MARK}@127.0.0.1:{port}/fail/T0/B0/{MARK}?token={MARK}"
    env = notify_env(
        [
            {"URL": fail, "ON": ["blocked"], "SECRET": f"key-{MARK}"},
            {"URL": webhook.url(f"hang/{MARK}"), "FORMAT": "slack", "ON": ["blocked"]},
            {"URL": webhook.url(f"trickle/x?key={MARK}"), "ON": ["blocked"]},
            {"URL": webhook.url(f"ok/{MARK}"), "FORMAT": "slack", "ON": ["blocked"]},
        ],
        timeout=bound,
    )

    result = lab.manage(
        "prepare_deploy", *FAST, "--timeout", "3", "--json", settings=NOTIFY, env=env
    )
    ended = datetime.now(UTC)

    assert result.code == 1, result.text  # what it would be with no notification at all
    report = result.report()
    assert report["verdict"] == "blocked" and report["restored"] is True
    # The trickle would hold the gate for ever: the bound ended the wait, with a margin for
    # a loaded machine (a behaviour, not a benchmark).
    finished = datetime.fromisoformat(report["finished_at"])
    assert (ended - finished).total_seconds() < bound + 10
    assert len(webhook.of_kind("fail")) == 2  # a 500 is worth one more try
    assert len(webhook.of_kind("ok")) == 1  # the good one went, beside the bad ones
    masked_fail = f"http://deployer:**@127.0.0.1:{port}/fail/***?***"
    failed = f"notification to {masked_fail} failed: HTTP 500 (2 tries)"
    trickled = f"notification to {webhook.url('trickle/***')}?*** failed: no answer within 4 s"
    hung = f"notification to {webhook.url('hang/***')} failed: "
    assert failed in result.err  # the person hears it (--json: on stderr)
    assert trickled in result.err
    assert hung in result.err
    assert failed in report["notes"]
    run = GateRun.objects.get()
    assert failed in run.report["notes"]
    assert any(n.startswith(trickled) for n in run.report["notes"])
    logged = (lab.var_dir / "taskmaster.log").read_text()
    assert f"WARNING taskmaster: {failed}" in logged
    page = admin_client.get(reverse("admin:taskmaster_gaterun_change", args=[run.pk]))
    assert html.escape(failed, quote=False) in page.content.decode()  # the run's page says so
    for text in (result.out, result.err, logged, json.dumps(run.report), page.content.decode()):
        assert MARK not in text
