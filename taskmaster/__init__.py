"""Taskmaster: a deploy gate for Celery workers."""
