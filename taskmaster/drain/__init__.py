"""One gate run and the way back.

The run itself (``run.py``: drain, poll, verdict, hold or restore), what it asks the broker
about the fleet (``fleet.py``), what it writes to the database (``records.py``), the restore,
and ``resume_consumers`` (``recovery.py``).
"""
