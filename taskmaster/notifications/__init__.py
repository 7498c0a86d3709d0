"""Notifications of a verdict: a JSON webhook, a Slack message (docs/observability.md)."""
