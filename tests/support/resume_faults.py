"""``manage.py`` with a bug injected into ``resume_consumers``: the restore raises before it
touches a worker. What an unexpected error inside a real resume looks like.

    python -m tests.support.resume_faults resume_consumers …

(Not named ``test_resume_*``: pytest would collect it as a test module.)
"""

import sys
from typing import Any

from django.core.management import execute_from_command_line

import taskmaster.drain.restore

# recovery.py binds restore_consumers when it is imported, which happens later, under Django's
# setup (it needs the models): patch the name at its source before that.
assert "taskmaster.drain.recovery" not in sys.modules


def restore_consumers(*args: Any, **kwargs: Any) -> list[str]:
    raise RuntimeError("injected fault")


taskmaster.drain.restore.restore_consumers = restore_consumers
execute_from_command_line(["manage.py", *sys.argv[1:]])
