"""Every conversation with the broker and the workers.

Celery's remote control (``control.py``), the replies turned into plain data, discovery,
worker events, what the broker URL says, and the broker's own count of consumers. Nothing
else in Taskmaster talks to the broker; the workers' side is ``taskmaster.tasks``.
"""
