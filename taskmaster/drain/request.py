"""What one gate is asked to do: the command's options, or the admin's button."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from taskmaster.conf import app_settings, is_seconds
from taskmaster.exits import ConfigurationError
from taskmaster.gate.scope import Scope


@dataclass(frozen=True)
class GateRequest:
    """What one gate is asked to do; ``None`` values come from the settings."""

    timeout: float | None = None
    interval: float | None = None
    hold: float | None = None
    dry_run: bool = False
    allow_no_workers: bool = False
    requested_by: str = ""  # who asked from the admin, recorded on the run
    requested_from: str = ""  # and from which address
    scope: Scope = field(default_factory=Scope)  # a selective drain: only these workers
    fail_fast: bool = False  # give up at once on a blocker that cannot end in time

    def resolved(self) -> GateRequest:
        """The request with the settings' defaults filled in, checked (ConfigurationError);
        the settings themselves are the entry point's to check (``settings_usable``)."""
        given = {"timeout": self.timeout, "interval": self.interval, "hold": self.hold}
        for name, value in given.items():
            if value is not None and not is_seconds(value):
                raise ConfigurationError(f"the {name} must be a number of seconds above 0")
        timeout = float(self.timeout or app_settings.TIMEOUT)
        request = replace(
            self,
            timeout=timeout,
            # `--timeout 5` alone means five seconds, not an error about a default interval.
            interval=float(self.interval or min(app_settings.INTERVAL, timeout)),
            hold=float(self.hold or app_settings.HOLD),
        )
        if request.seconds("interval") > request.seconds("timeout"):
            raise ConfigurationError(
                f"the interval ({request.interval:g} s) is longer than the timeout "
                f"({request.timeout:g} s): the gate would poll once. Shorten --interval or "
                "raise --timeout."
            )
        return request

    def seconds(self, name: str) -> float:
        value = getattr(self, name)
        assert value is not None, "resolve the request first"
        return float(value)
