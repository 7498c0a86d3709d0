"""The newcomer's path, proven end to end, as a person would walk it.

- A fresh ``git clone`` of this repository (its committed state: what a newcomer gets) runs
  the README's two commands and its walkthrough, each command read from the README and run
  verbatim in a shell, on the embedded default (SQLite, the filesystem broker, no server),
  and prints what the README shows.
- The wheel and sdist that ``python -m build`` makes install into a fresh virtualenv next to a
  new Django project made the way docs/install.md says, where ``migrate``, ``check`` and an
  idle gate work.

Both are slow (fresh virtualenvs, packages from the index or pip's cache): marked
``newcomer``, run by ``make test`` and CI. Neither uses a service of the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import django
import pytest

import taskmaster

# A virtualenv built from nothing: pip downloads and builds, minutes on a fresh machine.
pytestmark = [pytest.mark.newcomer, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
INSTALL = 900  # seconds for a command that creates a virtualenv and installs into it


def newcomer_env(**extra: str) -> dict[str, str]:
    """A person's shell: none of this suite's settings, services, virtualenv or make flags."""
    dropped = ("DJANGO_", "CELERY_", "TASKMASTER_", "PYTEST_", "TEST_", "MAKE", "PYTHON")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped)
        and k not in {"CI", "DATABASE_URL", "VIRTUAL_ENV", "MFLAGS", "ARGS"}
    }
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def shell(command: str, cwd: Path, env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run one command line as a person types it; its exit code and its output (2>&1)."""
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout


# -- the README, read as a person reads it ---------------------------------------------


def console_steps(markdown: str, heading: str) -> list[tuple[str, list[str]]]:
    """The first ```console block under the heading starting with ``heading``: each
    ``$ command`` with the lines the README shows it printing."""
    after = markdown.split("\n" + heading, 1)
    assert len(after) == 2, f"README.md: no heading starting {heading!r}"
    match = re.search(r"```console\n(.*?)\n```", after[1], flags=re.DOTALL)
    assert match, f"README.md: no console block under {heading!r}"
    steps: list[tuple[str, list[str]]] = []
    for line in match.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip() and line.strip() != "…":
            steps[-1][1].append(line)
    return steps


# What varies from one run to the next: clocks, durations, host and user names, process ids.
VARYING = [
    (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\dZ?", "<time>"),
    (r"\b\d\d:\d\d:\d\d\b", "<clock>"),
    (r"\b(?:\d+ h \d+ min|(?:\d+ min )?\d+(?:\.\d)? s)\b", "<duration>"),
    (r"[\w.-]+@[\w.-]+", "<node>"),
    (r"\(pid \d+\)", "(pid <n>)"),
    (r"Makefile:\d+", "Makefile:<n>"),
    (r"\[[0-9a-f]{8}-[0-9a-f…-]*\]", "[<task id>]"),
]


def normalized(line: str) -> str:
    for pattern, placeholder in VARYING:
        line = re.sub(pattern, placeholder, line)
    return line.strip()


def assert_prints(command: str, expected: list[str], output: str) -> None:
    """The lines the README shows appear in the output, in order (others may come between)."""
    actual = [normalized(line) for line in output.splitlines()]
    position = 0
    for line in expected:
        want = normalized(line)
        try:
            position = actual.index(want, position) + 1
        except ValueError:
            pytest.fail(f"README.md says `{command}` prints\n  {line}\nbut it printed:\n{output}")


def wait_for_ready(log: Path, timeout: float = 120) -> None:
    """As the README says: the worker is ready when its log says "ready."."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and " ready." in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    pytest.fail(f"the demo worker did not get ready:\n{log.read_text() if log.exists() else ''}")


@pytest.mark.readme
def test_a_fresh_clone_follows_the_readme(tmp_path: Path) -> None:
    clone = tmp_path / "taskmaster"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = newcomer_env(TASKMASTER_VAR_DIR=str(clone / "var"))
    readme = (clone / "README.md").read_text()

    # The two commands. `make gate` installs .venv first, then gates nothing: no worker runs.
    (gate, _), (test, _) = console_steps(readme, "## The two commands")
    code, out = shell(gate, clone, env, INSTALL)
    assert code == 0, out
    assert "no worker answered" in out and "verdict: clear (exit 0)" in out, out
    # `make test` from a fresh clone is what CI itself runs (.ci/run); here it must install and
    # collect the suite, without running it a second time inside itself.
    code, out = shell(test, clone, {**env, "PYTEST_ADDOPTS": "--collect-only -q"}, INSTALL)
    assert code == 0, out
    assert re.search(r"\d+ tests? collected", out), out

    # The walkthrough: a worker in the background, then each command and what it prints.
    (start_worker, _), *steps = console_steps(readme, "## A walkthrough with the demo project")
    assert start_worker.split("#")[0].rstrip().endswith("&"), start_worker
    # Its own process group (make, celery, the pool), so that the test can stop all of it.
    worker = subprocess.Popen(
        ["bash", "-c", start_worker], cwd=clone, env=env, start_new_session=True
    )
    try:
        wait_for_ready(clone / "worker.log")
        for command, expected in steps:
            code, out = shell(command, clone, env, 300)
            failed = any(line.startswith("make: *** ") for line in expected)
            assert (code != 0) == failed, f"`{command}` exited {code}:\n{out}"
            assert_prints(command, expected, out)
    finally:
        stop_group(worker.pid)


def stop_group(pgid: int) -> None:
    """Stop the demo worker (make, celery and its pool: one process group), warm then cold."""
    for signum, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


# -- the wheel, in a project of its own ----------------------------------------------------

SETTINGS = """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]
SECRET_KEY = "newcomer-test"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "taskmaster",
    "mysite",  # an app too, so that app.autodiscover_tasks() finds its tasks.py
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "mysite.urls"
STATIC_URL = "static/"
USE_TZ = True
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

BROKER = BASE_DIR / "broker"
for folder in ("data", "control"):
    (BROKER / folder).mkdir(parents=True, exist_ok=True)
CELERY_BROKER_URL = "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "data_folder_in": str(BROKER / "data"),
    "data_folder_out": str(BROKER / "data"),
    "control_folder": str(BROKER / "control"),
}
# No TASKMASTER: the defaults, and the Celery app where they look (mysite.celery.app).
"""

# Celery's "First steps with Django", as a project has it.
CELERY = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
app = Celery("mysite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
"""

TASKS = """
from celery import shared_task


@shared_task(acks_late=True)
def resize(upload_id):
    return upload_id
"""

MANAGE = """
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
"""


def make_project(root: Path) -> None:
    package = root / "mysite"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .celery import app as celery_app\n")
    (package / "settings.py").write_text(SETTINGS)
    (package / "celery.py").write_text(CELERY)
    (package / "tasks.py").write_text(TASKS)
    (package / "urls.py").write_text(
        "from django.contrib import admin\nfrom django.urls import path\n\n"
        'urlpatterns = [path("admin/", admin.site.urls)]\n'
    )
    (root / "manage.py").write_text(MANAGE)


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
    )
    return proc.stdout + proc.stderr


def package_files() -> set[str]:
    """Every file of the package in this checkout, as a wheel names it."""
    return {
        str(path.relative_to(ROOT))
        for path in (ROOT / "taskmaster").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_built_wheel_installs_into_a_fresh_project(tmp_path: Path) -> None:
    version = taskmaster.__version__
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--outdir", str(dist), str(ROOT)]
    run(build, ROOT, newcomer_env(), INSTALL)
    wheel = dist / f"django_taskmaster-{version}-py3-none-any.whl"
    sdist = dist / f"django_taskmaster-{version}.tar.gz"
    assert sorted(p.name for p in dist.iterdir()) == sorted([wheel.name, sdist.name])

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"django_taskmaster-{version}.dist-info/METADATA").decode()
    assert package_files() - names == set(), "pyproject.toml: package-data misses these"
    tops = {name.split("/")[0] for name in names}
    assert tops == {"taskmaster", f"django_taskmaster-{version}.dist-info"}, tops
    assert f"django_taskmaster-{version}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata
    assert "Classifier: Typing :: Typed" in metadata
    with tarfile.open(sdist) as archive:
        in_sdist = {n.split("/", 1)[-1] for n in archive.getnames()}
    assert {"LICENSE", "README.md", "pyproject.toml", "taskmaster/py.typed"} <= in_sdist

    # A fresh virtualenv with the wheel and the Django this suite runs on, nothing else.
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, newcomer_env())
    python = str(venv / "bin" / "python")
    install = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        str(wheel),
        f"django=={django.__version__}",
    ]
    # At the versions this suite runs with (CI pins them: .ci/constraints), not whatever PyPI
    # released this morning.
    pins = tmp_path / "pins.txt"
    freeze = [sys.executable, "-m", "pip", "freeze", "--exclude-editable"]
    pins.write_text(subprocess.run(freeze, capture_output=True, text=True, check=True).stdout)
    run(install, tmp_path, newcomer_env(PIP_CONSTRAINT=str(pins)), INSTALL)

    project = tmp_path / "project"
    make_project(project)
    env = newcomer_env()
    where = run(
        [python, "-c", "import taskmaster as t; print(t.__file__, t.__version__)"], project, env
    )
    assert str(venv) in where and version in where, where  # the wheel, not this checkout

    run([python, "manage.py", "migrate", "--verbosity", "0"], project, env)
    out = run([python, "manage.py", "check", "--fail-level", "WARNING"], project, env)
    assert "no issues" in out, out
    gate = [python, "manage.py", "prepare_deploy", "--timeout", "5", "--interval", "1"]
    out = run(gate, project, env, 120)
    assert "no worker answered" in out and "verdict: clear (exit 0)" in out, out
