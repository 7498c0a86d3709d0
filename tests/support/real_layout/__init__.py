"""A Django project laid out like a widely used project template: split settings
(``config.settings.local``), the Celery app in ``config/celery_app.py`` imported by
``config/__init__.py``, the root logger at INFO on the console, a global task time limit.
Tests run it with this folder as the working directory (tests/integration/test_real_layout.py)."""
