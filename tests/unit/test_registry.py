"""The acks_late registry: effective settings of real Celery apps, classified."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery

from taskmaster.gate.registry import Classification, build_registry, classify


@pytest.mark.parametrize(
    ("acks_late", "time_limit", "expected"),
    [
        (True, None, Classification.INTERRUPTIBLE),
        (True, 3600, Classification.INTERRUPTIBLE),
        (False, 60, Classification.SHORT),  # the limit itself is short
        (False, 61, Classification.BLOCKING),
        (False, None, Classification.BLOCKING),
        (False, 0, Classification.BLOCKING),  # 0 means "no limit" in Celery
    ],
)
def test_classify(acks_late: bool, time_limit: float | None, expected: Classification) -> None:
    assert classify(acks_late=acks_late, time_limit=time_limit, short_limit=60) is expected


def make_app(**conf: Any) -> Celery:
    app = Celery("registry-test", broker="memory://", set_as_current=False)
    app.conf.update(conf)

    @app.task(name="t.plain", shared=False)
    def plain() -> None: ...

    @app.task(name="t.late", shared=False, acks_late=True, reject_on_worker_lost=True)
    def late() -> None: ...

    @app.task(name="t.bounded", shared=False, time_limit=30, soft_time_limit=20)
    def bounded() -> None: ...

    @app.task(name="t.opt_out", shared=False, acks_late=False)
    def opt_out() -> None: ...

    return app


def summary(app: Celery, short_limit: float = 60) -> dict[str, tuple[str, bool, Any, Any]]:
    return {
        name: (str(i.classification), i.acks_late, i.time_limit, i.queue)
        for name, i in build_registry(app, short_limit=short_limit).items()
        if name.startswith("t.")  # shared tasks (the demo's @shared_task) join every app
    }


def test_task_attributes_and_celery_tasks_left_out() -> None:
    assert summary(make_app()) == {
        "t.bounded": ("short", False, 30.0, "celery"),
        "t.late": ("interruptible", True, None, "celery"),
        "t.opt_out": ("blocking", False, None, "celery"),
        "t.plain": ("blocking", False, None, "celery"),
    }


def test_app_wide_settings_are_the_effective_defaults() -> None:
    app = make_app(task_acks_late=True, task_time_limit=45)
    result = summary(app)
    assert result["t.plain"] == ("interruptible", True, 45.0, "celery")
    assert result["t.opt_out"] == ("short", False, 45.0, "celery")  # its own False wins


def test_annotations_and_routes_are_applied() -> None:
    app = make_app(
        task_annotations={"t.plain": {"acks_late": True}},
        task_routes={"t.bounded": {"queue": "mail"}},
    )
    registry = build_registry(app, short_limit=60)
    assert registry["t.plain"].classification is Classification.INTERRUPTIBLE
    assert registry["t.bounded"].queue == "mail"
    assert registry["t.late"].reject_on_worker_lost is True


def test_short_limit_is_a_setting() -> None:
    assert summary(make_app(), short_limit=10)["t.bounded"][0] == "blocking"


def test_demo_project_has_one_task_of_each_kind() -> None:
    from project.celery import app

    kinds = {name: str(i.classification) for name, i in build_registry(app, short_limit=60).items()}
    assert kinds == {
        "project.tasks.generate_report": "blocking",
        "project.tasks.resize_images": "interruptible",
        "project.tasks.send_receipt": "short",
    }


def test_the_registry_reads_what_the_worker_enforces_on_every_celery() -> None:
    # The task's own options, then task_annotations, then the settings: Celery 5.5 and 5.6
    # do not bind task_time_limit onto a task, but their workers enforce it all the same.
    app = make_app(
        task_time_limit=45,
        task_soft_time_limit=40,
        task_reject_on_worker_lost=True,
        task_annotations={"t.opt_out": {"time_limit": 20}},
    )
    registry = build_registry(app, short_limit=60)

    plain, bounded, opt_out = registry["t.plain"], registry["t.bounded"], registry["t.opt_out"]
    assert (plain.time_limit, plain.soft_time_limit, plain.reject_on_worker_lost) == (
        45.0,
        40.0,
        True,
    )
    assert (bounded.time_limit, bounded.soft_time_limit) == (30.0, 20.0)  # its own win
    assert opt_out.time_limit == 20.0  # the annotation wins over the setting
    assert str(plain.classification) == "short"  # bounded by the global limit
