"""What a notification says, how its URL is named, how its body is signed: pure, on outcomes
built here with real ``Blocker`` objects. Sending them, to a real HTTP server and from real
gates, is tests/integration/test_notifications.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

import taskmaster
from taskmaster.credentials import masked
from taskmaster.exits import BrokerUnavailable, GateFailed
from taskmaster.gate.outcome import Outcome, WorkerReport
from taskmaster.gate.rules import Blocker, Verdict
from taskmaster.notifications import payloads
from taskmaster.notifications.delivery import SIGNATURE_HEADER, USER_AGENT, post
from taskmaster.notifications.receivers import admin_link, destinations
from taskmaster.output.blockers import worst_first

START = datetime(2026, 11, 21, 9, 2, 9, tzinfo=UTC)
WHO = "alice@ci-3 (pid 4242), CI job https://ci.example.com/jobs/7"
LINK = "https://ops.example.com/admin/taskmaster/gaterun/12/change/"
SECRET_ARGS = "{'customer': 'hunter2-secret'}"


def blocker(name: str, worker: str = "w1@a", state: str = "active", **kw: Any) -> Blocker:
    values: dict[str, Any] = {
        "id": f"{name}-{worker}-{state}-{kw.pop('n', 0)}",
        "name": name,
        "worker": worker,
        "state": state,
        "runtime_seconds": 60.0 if state == "active" else None,
        "classification": "blocking",
        "reason": f"{state}: it would be lost",
        "args": SECRET_ARGS,  # a gate carries them for --show-args; a notification never does
    }
    values.update(kw)
    return Blocker(**values)


def silent(worker: str) -> Blocker:
    return Blocker(worker, "", worker, "silent", None, "", "the broker shows it alive, silent")


def outcome(*blockers: Blocker, **kw: Any) -> Outcome:
    values: dict[str, Any] = {
        "verdict": Verdict.BLOCKED,
        "started_at": START,
        "finished_at": START + timedelta(minutes=10),
        "timeout": 600.0,
        "interval": 20.0,
        "hold": 1800.0,
        "broker": "amqp://deployer:**@rabbit:5672//",
        "run_id": 12,
        "workers": [WorkerReport("w3@host", ("celery",), True)],
        "blockers": blockers,
        "restore_problems": [],
    }
    values.update(kw)
    return Outcome(**values)


def both(o: Outcome, link: str | None = LINK) -> tuple[dict[str, Any], str]:
    body = payloads.verdict_json(o, who=WHO, link=link, sent_at=o.finished_at)
    json.dumps(body)  # it must be JSON as it is
    return body, payloads.verdict_slack(o, who=WHO, link=link)["text"]


# -- the verdict ---------------------------------------------------------------------------


def test_a_blocked_verdict_says_what_blocked_who_ran_it_and_where_it_is() -> None:
    o = outcome(
        blocker("reports.generate", "w3@host", runtime_seconds=540.0),
        blocker("reports.generate", "w4@host", runtime_seconds=120.0, n=1),
    )

    body, text = both(o)

    assert body["schema"] == payloads.SCHEMA == 1
    assert (body["event"], body["verdict"], body["exit_code"], body["run_id"]) == (
        "blocked", "blocked", 1, 12,
    )  # fmt: skip
    assert body["requested_by"] == WHO
    assert body["broker"] == "amqp://deployer:**@rabbit:5672//"
    assert (body["started_at"], body["finished_at"], body["duration_seconds"]) == (
        "2026-11-21T09:02:09+00:00", "2026-11-21T09:12:09+00:00", 600.0,
    )  # fmt: skip
    assert (body["restored"], body["restore_problems"], body["error"]) == (True, [], None)
    assert body["workers"] == ["w3@host"]
    assert body["blocker_count"] == 2
    assert body["blockers"] == [
        {
            "task": "reports.generate",
            "workers": ["w3@host", "w4@host"],
            "count": 2,
            "states": {"active": 2},
            "oldest_seconds": 540.0,
            "classification": "blocking",
            "reason": "active: it would be lost",
        }
    ]
    assert body["more_blockers"] is None
    assert body["link"] == LINK
    assert body["summary"] == (
        f"Deploy blocked: gate run #12 by {WHO}, after 10 min 0 s: consumers restored."
    )
    assert text.splitlines() == [
        f":no_entry: *Deploy blocked*: gate run #12 by {WHO}, after 10 min 0 s: consumers "
        "restored.",
        "Broker amqp://deployer:**@rabbit:5672//, 1 worker drained, 2 blocker(s) (1 task name(s))",
        "• `reports.generate`: 2 active on w3@host, w4@host, oldest running 9 min 0 s (blocking)",
        f"<{LINK}|Gate run #12>",
    ]


def test_task_arguments_are_never_sent() -> None:
    o = outcome(blocker("reports.generate"), blocker("mail.send", state="reserved"))

    body, text = both(o)

    assert all(b.args == SECRET_ARGS for b in o.blockers)
    assert "hunter2" not in json.dumps(body) and "hunter2" not in text
    assert "hunter2" not in json.dumps(payloads.restored_json(restore(), link=LINK, sent_at=START))


def test_blockers_are_grouped_worst_first_as_every_output_groups_them() -> None:
    o = outcome(
        blocker("app.export", state="scheduled"),
        blocker("app.receipt", classification="short", runtime_seconds=50.0),
        blocker("app.report", state="reserved", n=1),
        blocker("app.report", runtime_seconds=12.0, n=2),
        silent("w9@a"),
    )

    body, text = both(o)

    order = [row.subject for row in worst_first(o.blockers)]
    assert order == ["w9@a", "app.report", "app.export", "app.receipt"]
    assert [r["task"] or r["workers"][0] for r in body["blockers"]] == order
    assert body["blockers"][0] == {
        "task": None,
        "workers": ["w9@a"],
        "count": 1,
        "states": {"silent": 1},
        "oldest_seconds": None,
        "classification": None,
        "reason": "the broker shows it alive, silent",
    }
    assert body["blockers"][1]["states"] == {"active": 1, "reserved": 1}
    bullets = [line for line in text.splitlines() if line.startswith("• ")]
    assert bullets == [
        "• worker `w9@a` (silent): the broker shows it alive, silent",
        "• `app.report`: 1 active, 1 reserved on w1@a, oldest running 12 s (blocking)",
        "• `app.export`: 1 scheduled on w1@a (blocking)",
        "• `app.receipt`: 1 active on w1@a, oldest running 50 s (short)",
    ]


def test_a_backlog_is_capped_at_ten_rows_and_the_rest_counted() -> None:
    names = [f"app.tasks.t{i:02d}" for i in range(14)]
    o = outcome(*(blocker(name, n=j) for name in names for j in range(3)))

    body, text = both(o)

    assert len(body["blockers"]) == 10
    assert body["blocker_count"] == 42
    assert body["more_blockers"] == {
        "workers": 0,
        "task_names": 4,
        "blockers": 12,
        "text": "… and 4 more task name(s) (12 blockers)",
    }
    assert len([line for line in text.splitlines() if line.startswith("• ")]) == 10
    assert "… and 4 more task name(s) (12 blockers)" in text


def test_a_clear_verdict_says_the_workers_are_held_and_nothing_was_restored() -> None:
    hold_until = START + timedelta(minutes=40)
    o = outcome(verdict=Verdict.CLEAR, restore_problems=None, hold_until=hold_until)

    body, text = both(o)

    assert (body["event"], body["exit_code"], body["restored"]) == ("clear", 0, None)
    assert body["hold_until"] == hold_until.isoformat()
    assert body["blockers"] == [] and body["blocker_count"] == 0
    assert text.startswith(":white_check_mark: *Deploy clear*: gate run #12 by ")
    assert "safe to stop the workers, drained until 09:42:09 UTC." in text


def test_an_error_before_any_run_says_so_and_that_nothing_was_touched() -> None:
    failure = BrokerUnavailable("cannot reach the broker at amqp://deployer:**@rabbit:5672//")
    o = Outcome.failed(failure)

    body, text = both(o, link=None)

    assert (body["verdict"], body["exit_code"], body["run_id"]) == ("error", 3, None)
    assert body["error"] == str(failure)
    assert body["restored"] is None and body["link"] is None
    assert body["summary"].startswith(
        f"Gate failed (exit 3): gate by {WHO}, no run recorded, after "
    )
    assert body["summary"].endswith(": nothing touched.")
    assert f"> {failure}" in text
    assert "<http" not in text  # no link without a run (or a SITE_URL)


def test_an_interrupted_gate_names_its_signal_and_exit() -> None:
    o = outcome(verdict=Verdict.INTERRUPTED, signum=signal.SIGTERM)

    body, text = both(o)

    assert (body["verdict"], body["exit_code"], body["signal"]) == ("interrupted", 143, "SIGTERM")
    assert text.startswith(
        ":octagonal_sign: *Gate interrupted by SIGTERM (exit 143)*: gate run #12"
    )


def test_consumers_not_all_restored_are_listed() -> None:
    problem = "w3@host: queue 'celery' not consumed again (PRECONDITION_FAILED)"
    o = outcome(blocker("reports.generate"), restore_problems=[problem])

    body, text = both(o)

    assert (body["exit_code"], body["restored"], body["restore_problems"]) == (5, False, [problem])
    assert "(exit 5)" in body["summary"]
    assert "consumers NOT all restored (1 problem)" in body["summary"]
    assert f"• not restored: {problem}" in text


def test_a_long_error_sentence_is_cut_and_slack_markup_in_any_text_is_escaped() -> None:
    o = Outcome.failed(GateFailed("<!channel> & " + "x" * 1000))
    o.blockers = (blocker("<b>odd</b>", reason="a <reason> & more"),)

    body, text = both(o)

    assert len(body["error"]) == 500 and body["error"].endswith("…")
    assert "<!channel>" not in text and "&lt;!channel&gt; &amp; " in text
    assert "`&lt;b&gt;odd&lt;/b&gt;`" in text


# -- a restore asked for by a person --------------------------------------------------------


def restore(**kw: Any) -> payloads.Restore:
    values: dict[str, Any] = {
        "run_id": 12,
        "by": "admin",
        "who": "bob (admin from 10.0.0.7)",
        "workers": ("w1@a", "w2@a"),
        "problems": (),
        "broker": "amqp://deployer:**@rabbit:5672//",
    }
    values.update(kw)
    return payloads.Restore(**values)


def test_a_restore_says_which_run_by_whom_and_which_workers() -> None:
    body = payloads.restored_json(restore(), link=LINK, sent_at=START)
    text = payloads.restored_slack(restore(), link=LINK)["text"]

    assert body == {
        "schema": 1,
        "event": "restored",
        "run_id": 12,
        "summary": "Consumers restored: gate run #12, from the admin, bob (admin from 10.0.0.7): "
        "w1@a, w2@a consume again.",
        "by": "admin",
        "restored_by": "bob (admin from 10.0.0.7)",
        "broker": "amqp://deployer:**@rabbit:5672//",
        "workers": ["w1@a", "w2@a"],
        "complete": True,
        "problems": [],
        "link": LINK,
        "sent_at": START.isoformat(),
    }
    assert text == (
        ":leftwards_arrow_with_hook: *Consumers restored*: gate run #12, from the admin, bob "
        f"(admin from 10.0.0.7): w1@a, w2@a consume again.\n<{LINK}|Gate run #12>"
    )


def test_a_restore_with_problems_lists_them() -> None:
    problem = "w2@a did not answer"
    r = restore(by="resume_consumers", who="carol@web1 (pid 9)", problems=(problem,))

    body = payloads.restored_json(r, link=None, sent_at=START)
    text = payloads.restored_slack(r, link=None)["text"]

    assert (body["complete"], body["problems"], body["by"]) == (
        False, [problem], "resume_consumers",
    )  # fmt: skip
    assert text.splitlines() == [
        ":warning: *Consumers NOT all restored*: gate run #12, by resume_consumers, "
        "carol@web1 (pid 9): 1 problem (w1@a, w2@a).",
        f"• not restored: {problem}",
    ]


# -- the URL, masked; the body, signed ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://hooks.slack.com/services/T0/B0/XYZ", "https://hooks.slack.com/services/***"),
        (
            "https://discord.com/api/webhooks/1234/tok-en_SECRET",
            "https://discord.com/api/***",
        ),
        (
            "https://acme.webhook.office.com/webhookb2/a1b2@c3d4/IncomingWebhook/e5f6/0099",
            "https://acme.webhook.office.com/webhookb2/***",
        ),
        (
            "https://hooks.example.com/hook?token=SECRET&x=1#frag",
            "https://hooks.example.com/hook?***#***",
        ),
        (
            "https://deploy:p%40ss-SECRET@n8n.example.com:8443/webhook/abc-SECRET",
            "https://deploy:**@n8n.example.com:8443/webhook/***",
        ),
        ("https://SECRET-token@hooks.example.com/in", "https://***@hooks.example.com/in"),
        ("http://[::1]:8080/a/SECRET", "http://[::1]:8080/a/***"),
        ("http://127.0.0.1:9000/ok/", "http://127.0.0.1:9000/ok/"),
        ("https://ops.example.com", "https://ops.example.com"),
        ("https://ops.example.com:notaport/x/SECRET", "***"),
    ],
)
def test_a_url_is_named_without_its_secret(url: str, shown: str) -> None:
    assert masked(url, secret_path=True) == shown
    assert "SECRET" not in masked(url, secret_path=True)


def test_a_json_body_with_a_secret_is_signed_so_a_receiver_can_verify_it() -> None:
    body = payloads.verdict_json(outcome(), who=WHO, link=None, sent_at=START)

    signed = post("https://x.example/h", body, event="blocked", sent_at=START, secret="s3cr3t")
    plain = post("https://x.example/h", body, event="blocked", sent_at=START)

    expected = hmac.new(b"s3cr3t", signed.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signed.headers[SIGNATURE_HEADER], f"sha256={expected}")
    assert json.loads(signed.body) == body
    assert signed.headers["X-Taskmaster-Timestamp"] == str(int(START.timestamp()))
    assert signed.headers["X-Taskmaster-Event"] == "blocked"
    assert signed.headers["User-Agent"] == USER_AGENT == f"taskmaster/{taskmaster.__version__}"
    assert SIGNATURE_HEADER not in plain.headers


# -- the settings ----------------------------------------------------------------------------


def test_destinations_are_those_whose_on_names_the_event() -> None:
    notifications = [
        {"URL": "https://a.example/1", "FORMAT": "slack", "ON": ["blocked", "error"]},
        {"URL": "https://b.example/2", "ON": ["clear"], "SECRET": "k"},
        {"URL": "https://c.example/3", "ON": ["blocked", "interrupted", "error"]},
        {"URL": "https://f.example/6"},  # no ON: skipped (the checks refuse it: E013)
        {"URL": "https://d.example/4", "FORMAT": "xml"},  # not a format: skipped
        "https://e.example/5",  # not a dict: skipped
    ]
    with override_settings(TASKMASTER={"NOTIFICATIONS": notifications}):
        by_event = {
            event: [d.url[8] for d in destinations(event)]
            for event in ("clear", "blocked", "interrupted", "error", "restored")
        }
        b = destinations("clear")[0]
    assert by_event == {
        "clear": ["b"],
        "blocked": ["a", "c"],
        "interrupted": ["c"],
        "error": ["a", "c"],
        "restored": [],
    }
    assert (b.format, b.secret) == ("json", "k")


def test_the_admin_link_is_under_site_url_and_absent_without_it() -> None:
    with override_settings(TASKMASTER={"SITE_URL": "https://ops.example.com/"}):
        assert admin_link(12) == "https://ops.example.com/admin/taskmaster/gaterun/12/change/"
        assert admin_link(None) is None
    with override_settings(TASKMASTER={}):
        assert admin_link(12) is None
