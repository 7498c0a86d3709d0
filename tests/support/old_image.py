"""``celery`` as an older worker image runs it: Taskmaster not installed.

Run as ``python -m tests.support.old_image -A project worker …`` with
``DJANGO_SETTINGS_MODULE=tests.support.old_worker_settings``. In this virtualenv Taskmaster is
installed, so Celery's CLI would load its entry point (``taskmaster.cli``, which imports
``taskmaster.tasks``); here ``import taskmaster`` fails as it does where the package is absent,
and Celery's CLI skips the plugin it cannot load.
"""

import sys

if __name__ == "__main__":
    sys.modules["taskmaster"] = None  # type: ignore[assignment]  # importing it raises ImportError
    from celery.__main__ import main

    main()
