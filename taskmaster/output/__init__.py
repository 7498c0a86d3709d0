"""What people and pipelines read of a gate: plain lines, the live view, CI outputs.

They all draw blockers the same way (``blockers.py``); a write that fails goes quiet
(``streams.py``), because nothing here may stand between a drain and its restore.
"""
