"""System checks, each with a stable id: settings (``E00x``), the Celery app and its blocking
tasks (``E001``, ``E006``, ``W001``, ``W002``, ``E010``), and broker settings that trap tasks
(``W003`` to ``W005``). ``apps.py`` imports this package, which registers them all."""

from taskmaster.checks import app, broker, settings  # noqa: F401  (registers them)
