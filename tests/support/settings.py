"""Settings for the test suite: the demo project on PostgreSQL.

``DATABASE_URL`` picks the database (default: the machine's PostgreSQL, trust auth);
pytest-django creates and drops ``test_<name>_<run>`` around the run (``run.py``: two runs
on one machine at once do not share it), with ``_gwN`` added for each process of ``pytest -n``.
"""

import os

from tests.support.run import RUN

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskmaster")

from project.settings import *  # noqa: F403
from project.settings import DATABASES

DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{RUN}"}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
