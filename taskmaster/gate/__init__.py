"""The gate's rules: what blocks a deploy, and what to say about it.

Pure logic over plain data (``inspection.py``), no I/O: ``cluster`` reports what the workers
and the broker said, ``drain`` supplies the time, and these modules decide.
"""
