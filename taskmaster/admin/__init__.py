"""The admin: non-interruptible tasks, gate run history, and the deploy readiness page.

Django's admin imports this module; each page registers itself in its own module.
"""

from taskmaster.admin import readiness, runs, task_policies  # noqa: F401  (registers them)
