"""Settings of the soak test's workers and gates: the demo project plus the soak tasks.

``CELERY_IMPORTS`` makes every worker register ``tests.support.soak_tasks`` and puts them in the
gate's acks_late registry (it imports the app's task modules), so both sides know them.
"""

from project.settings import *  # noqa: F403

CELERY_IMPORTS = ["tests.support.soak_tasks"]
