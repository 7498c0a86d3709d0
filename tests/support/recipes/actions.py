"""A GitHub Actions job run step by step on this machine, as the runner would run it.

Only what the recipe uses is implemented, and anything else fails loudly: ``if:`` with the
status functions, ``steps.<id>.outputs.<name>``, ``secrets.<NAME>``, ``==``, ``!=``, ``&&``,
``||`` and parentheses; ``${{ }}`` in ``env:`` and ``with:``; ``run:`` scripts run
verbatim with ``bash -e`` (the runner's default shell on Linux) in the workspace, each step
with fresh ``GITHUB_OUTPUT`` and ``GITHUB_STEP_SUMMARY`` files and ``GITHUB_ACTIONS=true``.
Steps that belong to GitHub or to the user's project (``uses:`` actions, the install, the
rollout) need a stand-in, given by step name or action name.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

StandIn = Callable[["Step", dict[str, str]], int]
STATUS = re.compile(r"\b(always|success|failure|cancelled)\(\)")
TOKEN = re.compile(
    r"\s*(?:(?P<op>&&|\|\||==|!=|\(|\))|(?P<str>'[^']*')|(?P<call>\w+)\(\)"
    r"|(?P<ctx>[A-Za-z_][\w.-]*))"
)
INTERPOLATION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Step:
    """One step of the job and, once run, what it left."""

    spec: dict[str, Any]
    outcome: str = "pending"  # success, failure, skipped, or stand-in: success/failure
    code: int | None = None
    out: str = ""
    err: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or self.spec.get("uses") or self.spec["run"])

    @property
    def annotations(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.startswith("::")]


class Job:
    def __init__(
        self,
        workflow: Mapping[str, Any],
        job: str,
        *,
        workspace: Path,
        base_env: Mapping[str, str],
        secrets: Mapping[str, str],
        stand_ins: Mapping[str, StandIn],
        env_overrides: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = workflow["jobs"][job]
        self.workspace = workspace
        self.base_env = dict(base_env)
        self.secrets = dict(secrets)
        self.stand_ins = dict(stand_ins)
        self.env_overrides = dict(env_overrides or {})
        self.steps = [Step(dict(s)) for s in self.spec["steps"]]
        self.env: dict[str, str] = {}
        self.transcript: list[str] = []

    # -- expressions -----------------------------------------------------------------

    def _context(self, path: str) -> str:
        parts = path.split(".")
        if parts[0] == "secrets" and len(parts) == 2:
            return self.secrets[parts[1]]
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            step = next((s for s in self.steps if s.spec.get("id") == parts[1]), None)
            assert step is not None, f"no step with id {parts[1]!r}"
            return step.outputs.get(parts[3], "")
        raise AssertionError(f"context {path!r} is not implemented by this runner")

    def evaluate(self, expression: str, step_index: int) -> Any:
        done = self.steps[:step_index]
        status = {
            "always": True,
            "cancelled": False,
            "failure": any(s.outcome.endswith("failure") for s in done),
        }
        status["success"] = not status["failure"]
        python, pos = [], 0
        while pos < len(expression.rstrip()):
            match = TOKEN.match(expression, pos)
            assert match and match.end() > pos, f"cannot read {expression[pos:]!r}"
            pos = match.end()
            if match["op"]:
                python.append({"&&": "and", "||": "or"}.get(match["op"], match["op"]))
            elif match["str"]:
                python.append(repr(match["str"][1:-1]))
            elif match["call"]:
                python.append(repr(status[match["call"]]))
            else:
                python.append(repr(self._context(match["ctx"])))
        # Python text built from the tokens above only: literals, and/or/==/!= and parentheses.
        return eval(" ".join(python), {"__builtins__": {}})

    def interpolate(self, text: str, step_index: int) -> str:
        return INTERPOLATION.sub(lambda m: str(self.evaluate(m[1], step_index)), text)

    def should_run(self, step: Step, index: int) -> bool:
        condition = str(step.spec.get("if", "success()"))
        condition = INTERPOLATION.sub(lambda m: m[1], condition)
        if not STATUS.search(condition):
            condition = f"success() && ({condition})"
        return bool(self.evaluate(condition, index))

    # -- running ---------------------------------------------------------------------

    def step(self, id_or_name: str) -> Step:
        return next(s for s in self.steps if id_or_name in (s.spec.get("id"), s.name))

    def step_env(self, step: Step, index: int, files: Path) -> dict[str, str]:
        job_env = {k: self.interpolate(str(v), index) for k, v in self.spec["env"].items()}
        job_env.update(self.env_overrides)
        step_env = {k: self.interpolate(str(v), index) for k, v in step.spec.get("env", {}).items()}
        files.mkdir(parents=True, exist_ok=True)
        (files / "output").write_text("")
        (files / "summary.md").write_text("")
        return {
            **self.base_env,
            **job_env,
            **step_env,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "example/project",
            "GITHUB_RUN_ID": "1001",
            "GITHUB_OUTPUT": str(files / "output"),
            "GITHUB_STEP_SUMMARY": str(files / "summary.md"),
        }

    def popen(self, id_or_name: str) -> subprocess.Popen[str]:
        """Start one ``run:`` step as the runner does, without waiting (to signal it)."""
        step = self.step(id_or_name)
        index = next(i for i, s in enumerate(self.steps) if s is step)
        env = self.step_env(step, index, self.workspace.parent / f"step-{index}")
        script = self.workspace.parent / f"step-{index}.sh"
        script.write_text(step.spec["run"])
        # A session of its own: the runner signals the entry process only, and a test can
        # still end whatever the step left behind.
        return subprocess.Popen(
            ["bash", "-e", str(script)], cwd=self.workspace, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip

    def run(self) -> list[Step]:
        for index, step in enumerate(self.steps):
            if not self.should_run(step, index):
                step.outcome = "skipped"
            else:
                self._run_one(step, index)
            self.transcript.append(f"{step.name}: {step.outcome}" + self._detail(step))
        return self.steps

    @property
    def failed(self) -> bool:
        return any(s.outcome.endswith("failure") for s in self.steps)

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    def _run_one(self, step: Step, index: int) -> None:
        files = self.workspace.parent / f"step-{index}"
        env = self.step_env(step, index, files)
        stand_in = self.stand_ins.get(step.name) or self.stand_ins.get(
            str(step.spec.get("uses", "")).split("@")[0]
        )
        if stand_in is not None:
            step.code = stand_in(step, env)
            kind = "stand-in: "
        else:
            assert "run" in step.spec, f"step {step.name!r} needs a stand-in"
            proc = self.popen(step.spec.get("id") or step.name)
            timeout = float(step.spec.get("timeout-minutes", 360)) * 60
            step.out, step.err = proc.communicate(timeout=timeout)
            step.code = proc.returncode
            kind = ""
        step.outcome = kind + ("success" if step.code == 0 else "failure")
        for line in (files / "output").read_text().splitlines():
            name, _, value = line.partition("=")
            step.outputs[name] = value
        step.summary = (files / "summary.md").read_text()

    @staticmethod
    def _detail(step: Step) -> str:
        if step.code is None:
            return ""
        outputs = " ".join(f"{k}={v}" for k, v in step.outputs.items())
        return f" (exit {step.code}{', outputs: ' + outputs if outputs else ''})"
