"""The admin as a superuser sees it: the non-interruptible tasks page and gate run history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from taskmaster.models import GateRun, RecordedBlocker, TaskPolicy
from tests.support.factories import blocker

pytestmark = pytest.mark.django_db

TASKS = reverse("admin:taskmaster_noninterruptibletask_changelist")


def policy(name: str, classification: str, *, time_limit: float | None = None) -> TaskPolicy:
    now = timezone.now()
    return TaskPolicy.objects.create(
        name=name,
        classification=classification,
        acks_late=classification == "interruptible",
        reject_on_worker_lost=False,
        time_limit=time_limit,
        first_seen=now,
        last_seen=now,
    )


def gate_run(verdict: str, days_ago: float, **fields: Any) -> GateRun:
    run = GateRun.objects.create(verdict=verdict, is_open=False, timeout=600, interval=20, **fields)
    started = timezone.now() - timedelta(days=days_ago)
    GateRun.objects.filter(pk=run.pk).update(
        started_at=started, finished_at=started + timedelta(seconds=600)
    )
    run.refresh_from_db()
    return run


@pytest.fixture
def tasks() -> dict[str, TaskPolicy]:
    """Two blocking tasks, a short one, an interruptible one and a retired blocking one.

    ``export`` blocked more deploys in all (5, long ago) but ``report`` blocked more in
    the last 30 days (3): the page puts ``report`` first.
    """
    rows = {
        "report": policy("app.tasks.report", "blocking"),
        "export": policy("app.tasks.export", "blocking"),
        "receipt": policy("app.tasks.receipt", "short", time_limit=30),
        "resize": policy("app.tasks.resize", "interruptible"),
        "legacy": policy("app.tasks.legacy", "blocking"),
    }
    TaskPolicy.objects.filter(name="app.tasks.legacy").update(retired_at=timezone.now())
    for day in range(3):
        blocker(gate_run("blocked", day + 1), "app.tasks.report", f"report-{day}", runtime=90)
    for day in range(5):
        blocker(gate_run("blocked", 60 + day), "app.tasks.export", f"export-{day}", runtime=7200)
    blocker(gate_run("blocked", 100), "app.tasks.export", "export-in-recent", runtime=10)
    blocker(gate_run("blocked", 10), "app.tasks.export", "export-recent", runtime=60)
    return rows


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(f"{TASKS}?{query}")
    assert response.status_code == 200
    return [row.name for row in response.context["cl"].result_list]


def test_the_page_lists_short_and_blocking_tasks_worst_recent_offender_first(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    response = admin_client.get(TASKS)

    assert response.status_code == 200
    names = [row.name for row in response.context["cl"].result_list]
    # report: 3 in 30 days; export: 1 in 30 days (7 all time); then no blocks, by name.
    assert names == [
        "app.tasks.report",
        "app.tasks.export",
        "app.tasks.legacy",
        "app.tasks.receipt",
    ]
    assert "app.tasks.resize" not in response.content.decode()
    page = response.content.decode()
    assert "Select non-interruptible task to change" in page
    for header in (
        "Time limit",
        "At the gate",
        "Blocked, 30 d",
        "Longest run seen",
        "Last blocked",
        "Notes",
    ):
        assert header in page
    # The headers' sort arrows say what the rows are sorted by: 30 days, all time, name.
    columns = list(response.context["cl"].list_display)
    assert response.context["cl"].get_ordering_field_columns() == {
        columns.index("deploys_blocked_recently"): "desc",
        columns.index("at_the_gate"): "desc",
        columns.index("task_name"): "asc",
    }
    export = response.context["cl"].result_list[1]
    assert (export.deploys_blocked_recently, export.deploys_blocked) == (1, 7)
    assert "2 h 0 min" in page  # export's longest runtime, 7200 s
    assert "project.<wbr>" not in page and "app.<wbr>tasks.<wbr>export" in page


def test_the_admin_index_names_the_page_non_interruptible_tasks(admin_client: Client) -> None:
    page = admin_client.get(reverse("admin:index")).content.decode()

    assert "Non-interruptible tasks" in page
    assert "Task policies" not in page  # one page for the registry rows, not two


def test_classification_filter_shows_interruptible_or_one_kind_on_request(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    assert listed(admin_client, "classification=interruptible") == ["app.tasks.resize"]
    assert listed(admin_client, "classification=short") == ["app.tasks.receipt"]
    assert listed(admin_client, "classification=blocking") == [
        "app.tasks.report",
        "app.tasks.export",
        "app.tasks.legacy",
    ]
    assert set(listed(admin_client, "classification=all")) == {t.name for t in tasks.values()}


def test_the_filter_sidebar_offers_all_and_marks_the_default_selected(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    response = admin_client.get(TASKS)

    spec = next(s for s in response.context["cl"].filter_specs if s.title == "classification")
    choices = list(spec.choices(response.context["cl"]))
    assert [c["display"] for c in choices] == [
        "non-interruptible (short and blocking)",
        "blocking",
        "short",
        "interruptible",
        "all",
    ]
    assert [c["selected"] for c in choices] == [True, False, False, False, False]
    assert choices[-1]["query_string"] == "?classification=all"


def test_retired_filter(admin_client: Client, tasks: dict[str, TaskPolicy]) -> None:
    assert listed(admin_client, "retired=yes") == ["app.tasks.legacy"]
    assert "app.tasks.legacy" not in listed(admin_client, "retired=no")
    assert listed(admin_client, "retired=no&classification=all") == [
        "app.tasks.report",
        "app.tasks.export",
        "app.tasks.receipt",
        "app.tasks.resize",
    ]


def test_search_by_name(admin_client: Client, tasks: dict[str, TaskPolicy]) -> None:
    assert listed(admin_client, "q=expo") == ["app.tasks.export"]
    assert listed(admin_client, "q=resize") == []  # interruptible: filtered by default
    assert listed(admin_client, "q=resize&classification=all") == ["app.tasks.resize"]


def test_a_column_header_sorts_by_its_annotation(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    response = admin_client.get(TASKS)
    columns = list(response.context["cl"].list_display)
    by_all_time = columns.index("at_the_gate")

    assert listed(admin_client, f"o=-{by_all_time}")[:2] == ["app.tasks.export", "app.tasks.report"]


def test_the_list_tells_tasks_that_blocked_a_deploy_from_those_that_could(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    response = admin_client.get(f"{TASKS}?classification=all")

    cells = {
        row.name: response.context["cl"].model_admin.at_the_gate(row)
        for row in response.context["cl"].result_list
    }
    assert cells == {
        "app.tasks.report": "<span class='tm-offender'>blocked 3 deploys</span>",
        "app.tasks.export": "<span class='tm-offender'>blocked 7 deploys</span>",
        "app.tasks.legacy": "<span class='tm-could'>could block one</span>",
        "app.tasks.receipt": "<span class='tm-could'>could block one</span>",
        "app.tasks.resize": "safe to stop",
    }
    assert listed(admin_client, "blocked=yes") == ["app.tasks.report", "app.tasks.export"]
    assert listed(admin_client, "blocked=no") == ["app.tasks.legacy", "app.tasks.receipt"]
    spec = next(s for s in response.context["cl"].filter_specs if s.title == "at the deploy gate")
    assert [c["display"] for c in spec.choices(response.context["cl"])] == [
        "All",
        "blocked a deploy",
        "could block one (never has)",
    ]


def test_a_tasks_page_shows_its_recent_blockers(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    url = reverse("admin:taskmaster_noninterruptibletask_change", args=[tasks["report"].pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    for task_id in ("report-0", "report-1", "report-2"):
        assert task_id in page
    assert "export-0" not in page  # another task's blockers
    run = RecordedBlocker.objects.get(task_id="report-0").run
    assert reverse("admin:taskmaster_gaterun_change", args=[run.pk]) in page
    assert "w1@host" in page  # the blockers' worker
    assert "1 min 30 s" in page  # runtime 90 s


def test_only_notes_can_be_changed(admin_client: Client, tasks: dict[str, TaskPolicy]) -> None:
    report = tasks["report"]
    url = reverse("admin:taskmaster_noninterruptibletask_change", args=[report.pk])
    assert list(admin_client.get(url).context["adminform"].form.fields) == ["notes"]

    response = admin_client.post(
        url,
        {
            "notes": "Owner: data team. OPS-42: make it acks_late.",
            "classification": "interruptible",
            "name": "renamed",
            "time_limit": "5",
        },
    )

    assert response.status_code == 302
    report.refresh_from_db()
    assert report.notes == "Owner: data team. OPS-42: make it acks_late."
    assert (report.name, report.classification, report.time_limit) == (
        "app.tasks.report",
        "blocking",
        None,
    )
    assert "Owner: data team." in admin_client.get(TASKS).content.decode()


def test_tasks_cannot_be_added_or_deleted(
    admin_client: Client, tasks: dict[str, TaskPolicy]
) -> None:
    pk = tasks["report"].pk
    add = reverse("admin:taskmaster_noninterruptibletask_add")
    delete = reverse("admin:taskmaster_noninterruptibletask_delete", args=[pk])

    assert admin_client.get(add).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    response = admin_client.post(TASKS, {"action": "delete_selected", "_selected_action": [pk]})
    assert TaskPolicy.objects.filter(pk=pk).exists()
    assert "delete_selected" not in admin_client.get(TASKS).content.decode()
    assert response.status_code in (200, 302)


# -- gate run history -------------------------------------------------------------------


@pytest.fixture
def blocked_run() -> GateRun:
    run = gate_run(
        "blocked",
        1,
        user="deploy",
        host="ci-runner-3",
        pid=4242,
        ci_job="https://ci.example/jobs/17",
        snapshot={"w1@a": [{"name": "celery"}], "w2@a": [{"name": "celery"}]},
    )
    blocker(run, "app.tasks.report", "report-9", runtime=75)
    blocker(run, "", "w2@a", runtime=60, worker="w2@a")
    return run


def test_gate_run_history_lists_verdict_duration_who_workers_and_blockers(
    admin_client: Client, blocked_run: GateRun
) -> None:
    cleared = gate_run("clear", 2)
    url = reverse("admin:taskmaster_gaterun_changelist")

    response = admin_client.get(url)

    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [blocked_run.pk, cleared.pk]
    page = response.content.decode()
    assert "deploy@ci-runner-3 (pid 4242), CI job https://ci.example/jobs/17" in page
    assert "2: w1@a, w2@a" in page
    assert "10 min 0 s" in page  # duration: finished 600 s after it started
    assert [r.blocker_count for r in response.context["cl"].result_list] == [2, 0]
    assert [r.pk for r in admin_client.get(f"{url}?verdict=clear").context["cl"].result_list] == [
        cleared.pk
    ]
    assert admin_client.get(f"{url}?started_at__year=1999").context["cl"].result_count == 0


def test_a_gate_run_page_is_read_only_with_its_blockers(
    admin_client: Client, blocked_run: GateRun
) -> None:
    url = reverse("admin:taskmaster_gaterun_change", args=[blocked_run.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    page = response.content.decode()
    assert "report-9" in page
    assert 'name="_save"' not in page  # a view page, not a form
    assert admin_client.post(url, {"verdict": "clear"}).status_code == 403
    blocked_run.refresh_from_db()
    assert blocked_run.verdict == "blocked"
    assert admin_client.get(reverse("admin:taskmaster_gaterun_add")).status_code == 403
    delete = reverse("admin:taskmaster_gaterun_delete", args=[blocked_run.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert GateRun.objects.filter(pk=blocked_run.pk).exists()
