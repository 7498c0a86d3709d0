"""Taskmaster: a deploy gate for Celery workers."""

# The one source of the version: pyproject.toml reads it ([tool.setuptools.dynamic]), the
# CHANGELOG names it, and a deploy log can print it (``taskmaster.__version__``).
__version__ = "0.1.0"
