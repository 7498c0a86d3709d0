"""The demo project with a project's own receivers of Taskmaster's signals
(``signal_receivers.py``), and a log whose every line shows its record's ``run_id``."""

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS, LOGGING, VAR_DIR

INSTALLED_APPS = [*INSTALLED_APPS, "tests.support.signal_receivers.SignalReceivers"]

LOGGING = {
    **LOGGING,
    "formatters": {"run": {"format": "run=%(run_id)s %(levelname)s %(message)s"}},
    "handlers": {
        "runs": {
            "class": "logging.FileHandler",
            "filename": str(VAR_DIR / "runs.log"),
            "formatter": "run",
        },
        "console": {"class": "logging.StreamHandler", "level": "ERROR", "formatter": "run"},
    },
    "loggers": {"taskmaster": {"handlers": ["runs", "console"], "level": "DEBUG"}},
}
