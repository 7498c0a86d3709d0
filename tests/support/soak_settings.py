"""Settings of the soak test's workers and gates: the demo project plus the soak tasks.

``CELERY_IMPORTS`` makes every worker register ``tests.support.soak_tasks`` and puts them in the
gate's acks_late registry (it imports the app's task modules), so both sides know them.
"""

from project.settings import *  # noqa: F403

CELERY_IMPORTS = ["tests.support.soak_tasks"]

if CELERY_BROKER_URL.startswith("redis"):  # noqa: F405
    # A message a worker took and never acknowledged (an acks_late task whose worker was
    # SIGKILLed by the soak's "deploy", a prefetched one) comes back after this long: a
    # minute, not Redis's hour, so the soak sees it run. Longer than any task waits
    # prefetched, or an early-ack one would be delivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 60}
