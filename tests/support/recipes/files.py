"""The recipes' files, read from their pages in docs/deploy/: the page is the one copy.

A file on a page is a fenced block with a title, ```` ```ini title="/etc/…/celery-worker.conf" ````
(MkDocs Material shows the title as the file's name). Tests take the file from there, change
only what the machine needs (paths, the user), and run or lint it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from tests.support.lab import ROOT, Lab, Worker

DEPLOY_DOCS = ROOT / "docs" / "deploy"
VENV_BIN = Path(sys.executable).parent
VENV = VENV_BIN.parent
FENCE = re.compile(r'^```[\w-]+ title="(?P<title>[^"]+)"\n(?P<body>.*?)^```$', re.S | re.M)


def recipe_files(page: str) -> dict[str, str]:
    """Every titled file of a page, by title."""
    return {m["title"]: m["body"] for m in FENCE.finditer((DEPLOY_DOCS / page).read_text())}


def recipe_file(page: str, title: str) -> str:
    files = recipe_files(page)
    assert title in files, f"{page} has no file titled {title!r}: {sorted(files)}"
    return files[title]


def templated(text: str, replacements: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced, in order; each must occur (no silent drift)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the recipe"
        text = text.replace(old, new)
    return text


def write(path: Path, text: str, *, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if executable:
        path.chmod(0o755)
    return path


def workspace(tmp_path: Path) -> Path:
    """A CI checkout: the demo's manage.py (a link) in a directory of its own, so the files a
    pipeline writes there (gate.json, gate.env) stay out of the repository."""
    ws = tmp_path / "workspace"
    ws.mkdir(parents=True)
    (ws / "manage.py").symlink_to(ROOT / "manage.py")
    return ws


def bare_env(extra: Mapping[str, str]) -> dict[str, str]:
    """What a service manager gives a process: a plain PATH, the environment it was told."""
    return {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", **extra}


def spawn(lab: Lab, name: str, argv: list[str], env: Mapping[str, str], cwd: Path) -> Worker:
    """Start a worker the way a recipe does, as the lab's (so teardown kills it)."""
    log = lab.var_dir / f"{name.split('@')[0]}-{len(lab.workers)}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=cwd, env=dict(env), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    worker = Worker(name, process, log)
    lab.workers.append(worker)
    lab.wait_ready(worker)
    return worker


def stop_main_process(worker: Worker, signum: int, within: float) -> float:
    """Signal the main process only (what KillMode=mixed, tini and the kubelet do); return
    how long the warm shutdown took. Fails if the worker outlives ``within`` seconds."""
    started = time.monotonic()
    os.kill(worker.process.pid, signum)
    worker.process.wait(timeout=within)
    return time.monotonic() - started
