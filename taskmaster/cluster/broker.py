"""What the broker URL says, before any message is sent: where it is (password masked),
whether its transport loads, and when it delivers an interrupted late-ack task again."""

from __future__ import annotations

from typing import Any, NamedTuple

from kombu.utils.url import maybe_sanitize_url

from taskmaster.exits import ConfigurationError


def broker_label(app: Any) -> str:
    """The broker URL with its password masked, safe to print (even for a bad URL)."""
    try:
        with app.connection_for_write() as conn:  # normalized: default host, port, vhost
            return str(maybe_sanitize_url(conn.as_uri(include_password=True)))
    except Exception:  # a transport that cannot load: say the URL as configured
        return str(maybe_sanitize_url(app.conf.broker_url or "amqp://"))


class TransportErrors(NamedTuple):
    connection: tuple[type[BaseException], ...]
    channel: tuple[type[BaseException], ...]


def transport_errors(app: Any) -> TransportErrors:
    """The connection and channel errors of the app's broker transport, loaded once.

    Loading the transport is where a mistyped scheme (``amqpp://``) or a missing library
    (``redis://`` without ``redis``) shows: a configuration error, before anything is touched.
    """
    try:
        conn = app.connection_for_write()
        return TransportErrors(tuple(conn.connection_errors), tuple(conn.channel_errors))
    except KeyError as exc:  # kombu: "No such transport: amqpp.  Did you mean amqp?"
        problem = str(exc.args[0] if exc.args else exc)
    except Exception as exc:  # its module fails to import: a missing or broken library
        scheme = str(app.conf.broker_url or "amqp://").partition(":")[0]
        problem = (
            f"its {scheme} transport cannot be loaded ({type(exc).__name__}: {exc}); is the "
            "library it needs installed?"
        )
    stop = "" if problem.endswith((".", "?")) else "."
    raise ConfigurationError(
        f"cannot use the broker {broker_label(app)}: {problem}{stop} Check CELERY_BROKER_URL "
        "(its scheme names the transport) and that the transport's library is installed."
    )


def redelivery(app: Any) -> dict[str, Any]:
    """When the broker delivers a late-acknowledged task again after its worker stopped."""
    scheme = str(app.conf.broker_url or "amqp://").partition("://")[0].partition("+")[0]
    options = app.conf.broker_transport_options or {}
    if scheme in ("redis", "rediss", "sentinel", "sqs"):
        # Unacknowledged messages wait in the broker until the visibility timeout, unless
        # the worker puts them back itself as it shuts down cleanly.
        timeout = float(options.get("visibility_timeout", 1800 if scheme == "sqs" else 3600))
        when = (
            "when its worker shuts down cleanly (SIGTERM), else only after the visibility "
            f"timeout ({timeout:g} s)"
        )
        return {"transport": scheme, "visibility_timeout": timeout, "late_ack": when}
    if scheme in ("amqp", "amqps", "pyamqp", "librabbitmq"):
        when = "at once, as soon as its worker's connection closes"
        return {"transport": scheme, "visibility_timeout": None, "late_ack": when}
    when = "as this transport redelivers unacknowledged messages"
    return {"transport": scheme, "visibility_timeout": None, "late_ack": when}
