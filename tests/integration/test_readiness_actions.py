"""The readiness page's guarded actions, with real workers and real gates: who may do what,
a forged request refused with nothing done, and Prepare deploy and Resume consumers end to
end, each recorded on its gate run (who, when, from where) and verified per worker."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from taskmaster.admin import launches
from taskmaster.models import GateRun
from tests.support.lab import Lab, wait_for
from tests.support.web import PASSWORD, PERMISSIONS, site_on, staff

PAGE = reverse("admin:taskmaster_deployreadiness_changelist")
STATUS = reverse("admin:taskmaster_deployreadiness_status")
PREPARE = reverse("admin:taskmaster_deployreadiness_prepare")
RESUME = reverse("admin:taskmaster_deployreadiness_resume")
FAST_GATES = {"TASKMASTER_TIMEOUT": "60", "TASKMASTER_INTERVAL": "1"}


@pytest.fixture
def site(lab: Lab, settings: Any) -> Iterator[Lab]:
    # A quick look: these tests are about who may act, and their lab has few workers.
    settings.TASKMASTER = {**settings.TASKMASTER, "REPLY_TIMEOUT": 0.5}
    with site_on(lab, **FAST_GATES):
        yield lab


def logged_in(username: str, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    assert client.login(username=username, password=PASSWORD)
    return client


def open_drain() -> GateRun:
    """A drain held by a gate that runs right now (this process stands in for it)."""
    return GateRun.objects.create(
        timeout=600,
        interval=20,
        host=socket.gethostname(),
        pid=os.getpid(),
        user="deploy",
        snapshot={"w1@lab": [{"name": "celery"}]},
    )


def act(client: Client, url: str) -> list[str]:
    """POST, follow to the page, and return the messages it shows (and so spends)."""
    response = client.post(url, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    return [str(m) for m in response.context["messages"]]


# -- who may do what -----------------------------------------------------------------------


def test_anonymous_users_go_to_the_login_page_and_nothing_is_done(site: Lab) -> None:
    client = Client()
    for url in (PAGE, STATUS, PREPARE, RESUME):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('admin:login')}?next={url}"
    assert client.post(PREPARE).status_code == 302

    assert not GateRun.objects.exists()
    assert launches.recent() == []


def test_a_user_who_is_not_staff_goes_to_the_login_page(site: Lab, django_user_model: Any) -> None:
    django_user_model.objects.create_user("customer", password=PASSWORD)

    response = logged_in("customer").get(PAGE)

    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_staff_without_the_permissions_see_the_page_but_no_button(
    site: Lab, django_user_model: Any
) -> None:
    staff(django_user_model, "viewer")
    staff(django_user_model, "deployer", *PERMISSIONS)
    viewer, deployer = logged_in("viewer"), logged_in("deployer")

    page = viewer.get(PAGE).content.decode()
    assert "Safe to deploy" in page
    assert 'id="tm-prepare"' not in page and 'id="tm-resume"' not in page
    assert f'href="{PREPARE}" id="tm-prepare"' in deployer.get(PAGE).content.decode()

    open_drain()
    assert 'id="tm-resume"' not in viewer.get(STATUS).content.decode()
    page = deployer.get(STATUS).content.decode()
    assert f'href="{RESUME}" id="tm-resume"' in page
    assert 'id="tm-prepare"' not in page  # a drain is open: no second gate


def test_a_forged_prepare_without_the_permission_is_refused_with_nothing_done(
    site: Lab, django_user_model: Any
) -> None:
    site.start_worker("w1")
    staff(django_user_model, "viewer", "resume_consumers")  # not prepare_deploy
    viewer = logged_in("viewer")

    assert viewer.get(PREPARE).status_code == 403  # not even the confirmation
    assert viewer.post(PREPARE).status_code == 403

    assert launches.recent() == []
    assert not GateRun.objects.exists()
    assert site.active_queues() == {site.workers[0].name: [site.queue]}


def test_a_forged_resume_without_the_permission_is_refused_with_nothing_done(
    site: Lab, django_user_model: Any
) -> None:
    run = open_drain()
    staff(django_user_model, "viewer", "prepare_deploy")  # not resume_consumers

    assert logged_in("viewer").post(RESUME).status_code == 403

    run.refresh_from_db()
    assert (run.is_open, run.resumed_by, run.restored_at) == (True, "", None)
    assert not LogEntry.objects.exists()


def test_a_post_without_the_csrf_token_is_refused_with_nothing_done(
    site: Lab, django_user_model: Any
) -> None:
    staff(django_user_model, "deployer", *PERMISSIONS)
    deployer = logged_in("deployer", csrf=True)
    run = open_drain()

    assert deployer.post(PREPARE).status_code == 403
    assert deployer.post(RESUME).status_code == 403

    assert launches.recent() == []
    run.refresh_from_db()
    assert (run.is_open, run.resumed_by) == (True, "")
    assert GateRun.objects.count() == 1


# -- the actions, end to end ---------------------------------------------------------------


def test_prepare_deploy_runs_a_gate_the_page_follows_and_resume_stops_it(
    site: Lab, django_user_model: Any
) -> None:
    worker = site.start_worker("w1")
    site.send("generate_report", 120)
    site.wait_active(worker.name)
    staff(django_user_model, "deployer", *PERMISSIONS)
    deployer = logged_in("deployer")
    confirm = deployer.get(PREPARE).content.decode()
    assert "Yes, prepare the deploy" in confirm and "Now: Blocked by 1 task" in confirm

    shown = act(deployer, PREPARE)

    (launch,) = launches.recent()
    assert shown == [
        f"Gate started (pid {launch.pid}): this page follows it. It drains every worker, "
        "then clears the deploy, or restores the consumers at its deadline."
    ]
    run = wait_for(lambda: GateRun.objects.filter(pid=launch.pid).first(), timeout=30)
    assert (run.requested_by, run.requested_from) == ("deployer", "127.0.0.1")
    wait_for(lambda: site.active_queues() == {worker.name: []})
    page = deployer.get(PAGE).content.decode()
    assert "Drain in progress since " in page and " by deployer (admin from 127.0.0.1), " in page
    assert "It waits for 1 task." in page
    assert 'id="tm-prepare"' not in page
    assert "started from this page, is stopped (SIGTERM)" in deployer.get(RESUME).content.decode()

    shown = act(deployer, RESUME)

    assert shown == [f"Verified: {worker.name} consumes {site.queue} again."]
    assert site.active_queues() == {worker.name: [site.queue]}
    assert launch.exit_code == 143  # SIGTERM: the gate restored its consumers itself
    run.refresh_from_db()
    assert (run.verdict, run.is_open, run.resumed_by, run.resumed_from) == (
        "interrupted",
        False,
        "deployer",
        "127.0.0.1",
    )
    assert run.restored_at is not None
    entry = LogEntry.objects.get(object_id=str(run.pk))
    assert entry.user.username == "deployer"
    assert entry.get_change_message() == "Resumed consumers from 127.0.0.1: every worker verified"


def test_a_cleared_deploy_held_by_the_lease_is_resumed_with_each_worker_verified(
    site: Lab, django_user_model: Any
) -> None:
    w1 = site.start_worker("w1")
    w2 = site.start_worker("w2", queues=[site.queue, f"{site.queue}-bulk"])
    staff(django_user_model, "deployer", *PERMISSIONS)
    deployer = logged_in("deployer")

    act(deployer, PREPARE)
    (launch,) = launches.recent()
    assert launch.done.wait(60) and launch.exit_code == 0, launch.report
    run = GateRun.objects.get()
    assert (run.verdict, run.is_open) == ("clear", False)
    page = deployer.get(STATUS).content.decode()
    assert f"Deploy cleared by gate run #{run.pk}: the workers stay drained until " in page
    assert act(deployer, PREPARE) == [
        f"Gate run #{run.pk} still holds the workers drained: resume its consumers, or wait "
        "for it to end, before preparing another deploy."
    ]
    assert GateRun.objects.count() == 1

    shown = act(deployer, RESUME)

    assert shown == [
        f"Verified: {w1.name} consumes {site.queue} again.",
        f"Verified: {w2.name} consumes {site.queue}, {site.queue}-bulk again.",
    ]
    assert site.active_queues() == {
        w1.name: [site.queue],
        w2.name: sorted([site.queue, f"{site.queue}-bulk"]),
    }
    run.refresh_from_db()
    assert (run.resumed_by, run.resumed_from) == ("deployer", "127.0.0.1")
    assert run.restored_at is not None and run.restored_at <= timezone.now()
    assert "Safe to deploy" in deployer.get(STATUS).content.decode()


def test_a_worker_that_does_not_answer_the_resume_is_said_not_verified(
    site: Lab, django_user_model: Any
) -> None:
    w1 = site.start_worker("w1")
    w2 = site.start_worker("w2")
    staff(django_user_model, "deployer", *PERMISSIONS)
    deployer = logged_in("deployer")
    act(deployer, PREPARE)
    (launch,) = launches.recent()
    assert launch.done.wait(60) and launch.exit_code == 0
    w2.kill()  # gone without a word: its consumers cannot be verified

    shown = act(deployer, RESUME)

    assert shown[0] == f"Verified: {w1.name} consumes {site.queue} again."
    assert shown[1].startswith(f"Not verified: {w2.name} does not answer: it may still be drained")
    run = GateRun.objects.get()
    assert (run.is_open, run.restored_at, run.resumed_by) == (False, None, "deployer")
