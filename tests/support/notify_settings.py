"""The demo project with notifications, for the gates of tests/integration/test_notifications.py.

The test gives the destinations as JSON in ``TASKMASTER_NOTIFICATIONS``, the site's address in
``TASKMASTER_SITE_URL`` and the bound of all notifications in
``TASKMASTER_NOTIFICATION_TIMEOUT``.
"""

import json
import os

from project.settings import *  # noqa: F403
from project.settings import TASKMASTER

TASKMASTER = {
    **TASKMASTER,
    "NOTIFICATIONS": json.loads(os.environ.get("TASKMASTER_NOTIFICATIONS", "[]")),
    "SITE_URL": os.environ.get("TASKMASTER_SITE_URL") or None,
    "NOTIFICATION_TIMEOUT": float(os.environ.get("TASKMASTER_NOTIFICATION_TIMEOUT", "5")),
}
