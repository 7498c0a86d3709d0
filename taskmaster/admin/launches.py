"""A gate started from the admin (the Prepare deploy button) runs in the background.

A gate never runs inside a web request: it may wait ten minutes, and a request that dies (a
proxy's timeout, a server reloading during the very deploy it gates) must not take a drain
with it. So the button starts ``prepare_deploy`` as a process of its own, in a session of its
own, which records itself (GateRun) like any gate; the page follows it by reading that
record. This process keeps each launch's exit code and report for the page, and only ever
signals a gate it started itself and has not reaped (its pid cannot belong to another).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import site
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import ENVIRONMENT_VARIABLE, settings
from django.utils import timezone

from taskmaster.exits import ConfigurationError
from taskmaster.models import GateRun

logger = logging.getLogger("taskmaster")

KEPT = 10  # launches this process remembers (their exit codes, for the page)


@dataclass
class Launch:
    """A gate this process started; its pid is the GateRun's, once the gate records itself."""

    process: subprocess.Popen[bytes]
    requested_by: str
    requested_from: str
    started_at: datetime
    folder: Path  # its JSON report (stdout) and its plain lines (stderr), until it ends
    done: threading.Event = field(default_factory=threading.Event)
    exit_code: int | None = None
    report: dict[str, Any] = field(default_factory=dict)  # its --json report, once ended

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def error(self) -> str:
        return str(self.report.get("error") or f"it exited {self.exit_code}")


_launches: list[Launch] = []
_lock = threading.Lock()


def settings_module() -> str:
    """This process's settings module (``override_settings`` hides it from ``settings``)."""
    module = settings.SETTINGS_MODULE or os.environ.get(ENVIRONMENT_VARIABLE)
    if not module:
        raise ConfigurationError(
            "this site was configured without a settings module (settings.configure()): "
            "run ./manage.py prepare_deploy where the workers' settings are"
        )
    return str(module)


def gate_command(user: str, address: str) -> list[str]:
    """``prepare_deploy`` through ``python -m django``: no need to know where manage.py is."""
    return [
        sys.executable,
        "-m",
        "django",
        "prepare_deploy",
        "--settings",
        settings_module(),
        "--json",
        "--requested-by",
        user,
        "--requested-from",
        address,
    ]


def gate_environment() -> dict[str, str]:
    """This process's environment and import path: the gate imports the same project and
    settings whatever directory, or process manager, started the web server. The standard
    library and site-packages are left out: the same interpreter finds them by itself."""
    env = dict(os.environ)
    own = [os.path.abspath(entry or os.curdir) for entry in sys.path if not _installed(entry)]
    own = [entry for entry in dict.fromkeys(own) if os.path.isdir(entry)]  # no path hooks
    env["PYTHONPATH"] = os.pathsep.join([*own, *filter(None, [env.get("PYTHONPATH")])])
    env[ENVIRONMENT_VARIABLE] = settings_module()
    return env


def _installed(entry: str) -> bool:
    """Whether an import path entry is the interpreter's own (stdlib, site-packages)."""
    roots = {*sysconfig.get_paths().values(), *site.getsitepackages(), site.getusersitepackages()}
    path = os.path.realpath(entry or os.curdir)
    return any(
        path == root or path.startswith(root + os.sep) for root in map(os.path.realpath, roots)
    )


def launch_gate(user: str, address: str) -> Launch:
    """Start ``prepare_deploy`` in the background, as ``user`` asked from ``address``.

    Raises ConfigurationError or OSError when it cannot be started (the page says why)."""
    command, env = gate_command(user, address), gate_environment()
    folder = Path(tempfile.mkdtemp(prefix="taskmaster-gate-"))
    try:
        with (folder / "report.json").open("wb") as out, (folder / "gate.log").open("wb") as err:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,  # a signal to the web server's group must not reach it
            )
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    launch = Launch(process, user, address, timezone.now(), folder)
    with _lock:
        _launches.append(launch)
        del _launches[:-KEPT]
    threading.Thread(target=_follow, args=(launch,), name="taskmaster-gate", daemon=True).start()
    logger.info("admin: %s (from %s) started a gate, pid %s", user, address, process.pid)
    return launch


def _follow(launch: Launch) -> None:
    """Wait for the gate (so it is reaped), then keep its exit code and report."""
    code = launch.process.wait()
    try:
        launch.report = json.loads((launch.folder / "report.json").read_text() or "{}")
    except (OSError, ValueError):
        launch.report = {}
    if code and not launch.report.get("run_id"):
        log = (launch.folder / "gate.log").read_text(errors="replace")[-2000:]
        logger.warning("admin: the gate pid %s exited %s before a run: %s", launch.pid, code, log)
    shutil.rmtree(launch.folder, ignore_errors=True)
    launch.exit_code = code
    launch.done.set()


def recent() -> list[Launch]:
    with _lock:
        return list(_launches)


def forget() -> None:
    """Forget the launches that have ended (tests)."""
    with _lock:
        _launches[:] = [launch for launch in _launches if not launch.done.is_set()]


def unrecorded() -> list[Launch]:
    """Launches with no gate run to show for them: starting still, or ended before one (an
    error, exit 2 to 4). The page shows these; a gate that recorded itself is its run."""
    pending = [x for x in recent() if not x.report.get("run_id")]
    host = socket.gethostname()
    recorded = set(
        GateRun.objects.filter(host=host, pid__in=[x.pid for x in pending]).values_list(
            "pid", flat=True
        )
    )
    return [x for x in pending if x.pid not in recorded]


def running() -> Launch | None:
    return next((launch for launch in recent() if not launch.done.is_set()), None)


def own_gate(run: GateRun) -> Launch | None:
    """The launch of this process that runs ``run``, while it runs (only those are signalled:
    a pid read from the database may belong to another process by now)."""
    if not run.is_open or run.host != socket.gethostname():
        return None
    return next((x for x in recent() if x.pid == run.pid and not x.done.is_set()), None)
