"""The web process as a deployed site runs it: its Celery app on the lab's broker, its gates
(the Prepare deploy button) on the test database, and admin users with or without the
readiness page's permissions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import Permission
from django.test import override_settings

from taskmaster.admin import launches
from taskmaster.readiness.looks import looks
from tests.conftest import database_url
from tests.support.lab import Lab

PASSWORD = "s3cret-pw"
PERMISSIONS = ("prepare_deploy", "resume_consumers")


@contextmanager
def site_on(lab: Lab, broker_url: str | None = None, **env: str) -> Iterator[None]:
    """Point this process's Celery app at ``broker_url`` (the lab's), and give the gates the
    page starts the same broker and the test database, plus ``env``.

    This process reads the broker from Django's settings (overridden here); the gates it
    starts read ``CELERY_BROKER_URL`` from the environment, before any configuration.
    """
    url = broker_url or lab.broker_url
    ours = broker_url in (None, lab.broker_url)
    # Celery reads the project's settings through Django's (namespace CELERY): change them
    # there. A change in app.conf is not enough on Celery 5.5, which looks up
    # CELERY_BROKER_TRANSPORT (the demo's filesystem transport) before it.
    broker = override_settings(
        CELERY_BROKER_URL=url,
        CELERY_BROKER_TRANSPORT=lab.app.conf.broker_transport if ours else None,
        CELERY_BROKER_TRANSPORT_OPTIONS=lab.app.conf.broker_transport_options if ours else {},
    )
    saved = dict(os.environ)
    os.environ.update(
        CELERY_BROKER_URL=url,
        DATABASE_URL=database_url(),
        TASKMASTER_VAR_DIR=str(lab.var_dir),
        **env,
    )
    looks.forget()
    launches.forget()
    try:
        with broker:
            yield
    finally:
        stop_gates()
        os.environ.clear()
        os.environ.update(saved)
        looks.forget()
        launches.forget()


def stop_gates() -> None:
    """Stop the gates the page started (they restore their workers) before the lab goes."""
    for launch in launches.recent():
        if not launch.done.is_set():
            launch.process.terminate()
            launch.done.wait(60)


def staff(django_user_model: Any, username: str, *permissions: str) -> Any:
    """An active staff user with these taskmaster permissions (codenames), and nothing else."""
    user = django_user_model.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="taskmaster", codename__in=permissions)
    )
    return user
