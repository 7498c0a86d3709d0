"""``manage.py`` with a bug injected into the gate: ``Gate.decide`` raises at its second call,
when the workers are drained. What an unexpected error inside a real gate looks like.

    python -m tests.support.faulty_manage prepare_deploy …
"""

import sys
from typing import Any

from django.core.management import execute_from_command_line

from taskmaster.gate.rules import Gate

original = Gate.decide
calls = 0


def decide(self: Gate, *args: Any, **kwargs: Any) -> Any:
    global calls
    calls += 1
    if calls == 2:
        raise RuntimeError("injected fault")
    return original(self, *args, **kwargs)


Gate.decide = decide  # type: ignore[method-assign]
execute_from_command_line(["manage.py", *sys.argv[1:]])
