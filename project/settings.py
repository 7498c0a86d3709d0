"""Settings of the demo project, read from the environment.

With nothing set, everything is embedded: SQLite and Celery's ``filesystem://`` transport
in ``var/`` under the checkout, so ``./manage.py prepare_deploy`` runs with no server.

- ``DATABASE_URL``: ``postgres://user:password@host:5432/name`` or ``sqlite:///path``.
- ``CELERY_BROKER_URL``: ``amqp://guest:guest@127.0.0.1:5672//``, ``redis://127.0.0.1:6379/0``.
- ``TASKMASTER_PUSHGATEWAY``, ``TASKMASTER_METRICS_TEXTFILE``, ``TASKMASTER_METRICS_TOKEN``: the
  gate's Prometheus metrics (pushed, written for node_exporter, served at /metrics/taskmaster).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TASKMASTER_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskmaster",
    "project",  # its tasks.py, found by app.autodiscover_tasks() like any app's
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "project.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "static/"
USE_TZ = True
TIME_ZONE = "UTC"


def database_from_url(url: str) -> dict[str, Any]:
    """A DATABASES entry from a ``DATABASE_URL`` (postgres or sqlite)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) or ":memory:",
        }
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (postgres or sqlite)")


VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    )
}


#: Celery's filesystem transport with atomic writes, reads and bindings (the module says why).
FILESYSTEM_TRANSPORT = "project.filesystem_broker:Transport"


def filesystem_transport_options(var_dir: Path) -> dict[str, Any]:
    """Options of the ``filesystem://`` transport, in folders under ``var_dir``.

    One folder for messages in both directions (every process on the machine shares it)
    and a control folder for the fanout exchanges that remote control uses.
    """
    broker_dir = var_dir / "broker"
    for folder in ("data", "control", "processed"):
        (broker_dir / folder).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(broker_dir / "data"),
        "data_folder_out": str(broker_dir / "data"),
        "control_folder": str(broker_dir / "control"),
        "processed_folder": str(broker_dir / "processed"),
        "store_processed": False,
        "polling_interval": 0.1,
    }


CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = FILESYSTEM_TRANSPORT
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_transport_options(VAR_DIR)
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# One prefetched message per worker process: each prefetched early-ack task is a blocker
# every gate would wait out (taskmaster.W004).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# The gate's own log (drains, verdicts, restores) for an operator's log pipeline; errors with
# their traceback also go to the console.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": str(VAR_DIR / "taskmaster.log"),
            "formatter": "plain",
        },
        "console": {"class": "logging.StreamHandler", "level": "ERROR", "formatter": "plain"},
    },
    "loggers": {
        "taskmaster": {"handlers": ["file", "console"], "level": "INFO", "propagate": False}
    },
}

TASKMASTER = {
    "CELERY_APP": "project.celery.app",
    "TIMEOUT": int(os.environ.get("TASKMASTER_TIMEOUT", 600)),
    "INTERVAL": int(os.environ.get("TASKMASTER_INTERVAL", 20)),
    # generate_report is left un-accepted on purpose: `check` shows taskmaster.W001 for it.
    "ACCEPTED_BLOCKING_TASKS": [],
    # Unset (None): no push, no textfile, and the page /metrics/taskmaster for logged-in users
    # who may view gate runs only.
    "METRICS": {
        "PUSHGATEWAY": os.environ.get("TASKMASTER_PUSHGATEWAY") or None,
        "TEXTFILE": os.environ.get("TASKMASTER_METRICS_TEXTFILE") or None,
        "TOKEN": os.environ.get("TASKMASTER_METRICS_TOKEN") or None,
    },
}
