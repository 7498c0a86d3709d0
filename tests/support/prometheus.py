"""A real Prometheus, Pushgateway and node_exporter for the metrics' tests (Debian's binaries).

Each on a free loopback port in a folder of its own, so every ``pytest -n`` process has its
own set: Prometheus scrapes, every second, the Pushgateway (``honor_labels``: the pushed job
label stays ``taskmaster``; behind basic auth, so a push proves it sends the credentials of
its URL), node_exporter's textfile collector (job ``node``) and the Django view (job
``django``, with a bearer token). ``query()`` asks Prometheus' HTTP API; ``wait()`` polls it
until a state is reached, never a sleep.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# In CI every tool the tests use is required: a missing one fails, never skips.
REQUIRE_TOOLS = bool(os.environ.get("CI"))

# The Pushgateway's basic auth: a user, its password, and the password's bcrypt hash (cost
# 4: the least bcrypt allows, so the checks of a scrape every second cost nothing).
PUSH_USER = "gate"
PUSH_PASSWORD = "gate-push-pw"
PUSH_HASH = "$2b$04$Uz6XxBEnD1w.qYwHptTD4OYwv4kDMt2ALOGgYmnuFxoPDWR3Kv6xK"


def tool(name: str) -> str:
    """The path of a Debian binary (promtool, prometheus, …); fails in CI when it is missing,
    skips elsewhere."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else "")
    if not path:
        message = f"{name} is not installed (Debian package of the same name)"
        if REQUIRE_TOOLS:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, auth: tuple[str, str] | None = None) -> bool:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", basic(*auth))
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start(
    name: str, args: Callable[[int], list[str]], ready: str, folder: Path, **check: Any
) -> Server:
    """Start ``name`` on a free port, and wait until ``ready`` (a path) answers 200. A port
    taken between the choice and the bind: another port, up to three times."""
    binary = tool(name)
    for attempt in range(3):
        port = free_port()
        log = folder / f"{name}-{attempt}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [binary, *args(port)], cwd=folder, stdout=out, stderr=subprocess.STDOUT
            )
        server = Server(name, process, log, port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if http_ok(f"http://{server.address}{ready}", **check):
                return server
            time.sleep(0.1)
        server.stop()
        if "address already in use" not in server.logs():
            break
    raise RuntimeError(f"{name} did not start:\n{server.logs()}")


@dataclass
class Stack:
    """The three servers, and Prometheus' view of what they expose."""

    prometheus: Server
    pushgateway: Server
    node_exporter: Server
    textfile: Path  # where a gate writes (node_exporter reads the *.prom of its folder)

    @property
    def pushgateway_url(self) -> str:
        """The Pushgateway's URL with its credentials, as a user puts it in the settings."""
        return f"http://{PUSH_USER}:{PUSH_PASSWORD}@{self.pushgateway.address}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result: [{"metric": {labels}, "value": [time, "value"]}]."""
        url = f"http://{self.prometheus.address}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}
        )
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def values(self, expr: str, by: str = "") -> dict[str, float]:
        """The query's samples keyed by the value of label ``by`` ("" for none)."""
        return {
            sample["metric"].get(by, ""): float(sample["value"][1]) for sample in self.query(expr)
        }

    def wait(
        self, expr: str, expected: dict[str, float], by: str = "", timeout: float = 30
    ) -> None:
        """Until the query's samples are exactly ``expected`` (a scrape every second: a few
        seconds, unless it never comes)."""
        deadline = time.monotonic() + timeout
        seen: dict[str, float] = {}
        while time.monotonic() < deadline:
            seen = self.values(expr, by)
            if seen == expected:
                return
            time.sleep(0.25)
        raise AssertionError(f"{expr}: {seen} after {timeout} s, expected {expected}")

    def targets(self) -> dict[str, str]:
        """Each scrape job's health ("up", "down", "unknown") and last error."""
        url = f"http://{self.prometheus.address}/api/v1/targets"
        with urllib.request.urlopen(url, timeout=5) as response:
            active = json.load(response)["data"]["activeTargets"]
        return {t["labels"]["job"]: f"{t['health']} {t['lastError']}".strip() for t in active}

    def reset(self) -> None:
        """Forget what an earlier test pushed and wrote."""
        request = urllib.request.Request(
            f"http://{self.pushgateway.address}/metrics/job/taskmaster", method="DELETE"
        )
        request.add_header("Authorization", basic(PUSH_USER, PUSH_PASSWORD))
        urllib.request.urlopen(request, timeout=5).close()
        self.textfile.unlink(missing_ok=True)


@contextmanager
def prometheus_stack(folder: Path, *, view: str, view_path: str, token: str) -> Iterator[Stack]:
    """Start the Pushgateway, node_exporter and Prometheus (scraping them and the Django view
    at ``view``, host:port), and stop them at the end."""
    textfiles = folder / "textfiles"
    textfiles.mkdir()
    web_config = folder / "pushgateway-web.yml"
    # YAML is a superset of JSON: no YAML library needed to write a configuration.
    web_config.write_text(json.dumps({"basic_auth_users": {PUSH_USER: PUSH_HASH}}))
    with ExitStack() as stack:
        pushgateway = start(
            "prometheus-pushgateway",
            lambda port: [
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.config.file={web_config}",
            ],
            "/-/ready",
            folder,
            auth=(PUSH_USER, PUSH_PASSWORD),
        )
        stack.callback(pushgateway.stop)
        node = start(
            "prometheus-node-exporter",
            lambda port: [
                f"--web.listen-address=127.0.0.1:{port}",
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={textfiles}",
            ],
            "/metrics",
            folder,
        )
        stack.callback(node.stop)
        config = folder / "prometheus.yml"
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                    "scrape_configs": [
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,  # the pushed job="taskmaster", not ours
                            "basic_auth": {"username": PUSH_USER, "password": PUSH_PASSWORD},
                            "static_configs": [{"targets": [pushgateway.address]}],
                        },
                        {"job_name": "node", "static_configs": [{"targets": [node.address]}]},
                        {
                            "job_name": "django",
                            "metrics_path": view_path,
                            "authorization": {"type": "Bearer", "credentials": token},
                            "static_configs": [{"targets": [view]}],
                        },
                    ],
                }
            )
        )
        prometheus = start(
            "prometheus",
            lambda port: [
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            "/-/ready",
            folder,
        )
        stack.callback(prometheus.stop)
        yield Stack(prometheus, pushgateway, node, textfiles / "taskmaster.prom")
