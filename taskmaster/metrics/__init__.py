"""Prometheus metrics of the gate, read from the database (docs/observability.md)."""
