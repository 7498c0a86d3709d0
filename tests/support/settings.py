"""Settings for the test suite: the demo project on PostgreSQL.

``DATABASE_URL`` picks the database (default: the machine's PostgreSQL, trust auth);
pytest-django creates and drops ``test_<name>`` around the run.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/taskmaster")

from project.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
