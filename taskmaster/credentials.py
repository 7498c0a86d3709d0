"""URLs that carry credentials (a Pushgateway's, a webhook's, RabbitMQ's management API's):
what may be shown of them, and how they log in.

``urllib`` would read ``user:password@`` as a part of the host name: the credentials go in an
HTTP Basic ``Authorization`` header instead, and every sentence shows the URL masked.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit


def without_credentials(url: str) -> tuple[str, str | None]:
    """The URL to request, and its ``Authorization`` header (``None`` without credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    header = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=_host(parts.hostname, parts.port))), header


def masked(url: str, *, secret_path: bool = False) -> str:
    """The URL as it may be shown: its password as ``**`` (as kombu shows a broker's).

    ``secret_path``: the URL is itself the key (a Slack, Discord or Teams webhook), so only
    the scheme, the host, the port and the first path segment stay; the rest of the path,
    the query, the fragment and a lone user name (often a token) become ``***``:
    ``https://hooks.slack.com/services/T0/B0/XYZ`` → ``https://hooks.slack.com/services/***``.
    """
    try:
        parts = urlsplit(url)
        netloc = _host(parts.hostname, parts.port)
    except ValueError:  # a port that is not a number, a broken IPv6 address
        return "***"
    if parts.password is not None:
        netloc = f"{parts.username}:**@{netloc}"
    elif parts.username is not None:
        netloc = f"***@{netloc}" if secret_path else f"{parts.username}@{netloc}"
    if not secret_path:
        return urlunsplit(parts._replace(netloc=netloc))
    first, sep, rest = parts.path.lstrip("/").partition("/")
    path = ("/" if parts.path.startswith("/") else "") + first + ("/***" if rest else sep)
    prefix = f"{parts.scheme}://{netloc}" if parts.scheme or netloc else ""
    query = "?***" if parts.query else ""
    fragment = "#***" if parts.fragment else ""
    return f"{prefix}{path}{query}{fragment}"


def _host(hostname: str | None, port: int | None) -> str:
    """A URL's host and port, without its credentials (an IPv6 address in brackets)."""
    name = f"[{hostname}]" if hostname and ":" in hostname else hostname or ""
    return f"{name}:{port}" if port is not None else name
