"""A fleet of simulated Celery workers on a real broker, for benchmarks (not shipped).

``Fleet(1000, env).start()`` starts 8 processes of 125 simulated workers each on the broker
of ``env`` (the environment a real worker would get), and returns once every one answers;
``python -m benchmarks.fleet`` does the same from a shell. See ``simulator.py`` for what a
simulated worker is, and ``tests/integration/test_fleet_simulator.py`` for the proof that the
gate cannot tell one from a real worker.
"""

from benchmarks.fleet.fleet import Fleet, fleet, node_names

__all__ = ["Fleet", "fleet", "node_names"]
