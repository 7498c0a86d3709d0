"""The documentation follows the code: options, defaults, exit codes, report keys, settings.

Each test reads what the code says at test time (``--help``, ``conf.DEFAULTS``, ``ExitCode``,
the JSON report) and compares it with the page that documents it, so a change to either side
without the other fails here, and the message says which page to update. The site itself
must build with ``mkdocs build --strict`` (broken links, pages and anchors fail).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import execute_from_command_line, load_command_class
from django.core.management.base import BaseCommand
from django.test import override_settings
from packaging.version import Version

import taskmaster
from taskmaster.conf import DEFAULTS
from taskmaster.exits import ExitCode
from taskmaster.management.common import STOP_SIGNALS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
COMMANDS = ("prepare_deploy", "resume_consumers", "sync_task_registry")
SETTING = re.compile(r"""TASKMASTER\[["']([A-Z_]+)["']\]""")
CHECK_ID = re.compile(r"taskmaster\.[EW]\d{3}")


# -- reading the code's side ---------------------------------------------------------


def help_text(command: str) -> str:
    """What ``./manage.py <command> --help`` prints."""
    parser = load_command_class("taskmaster", command).create_parser("manage.py", command)
    return str(parser.format_help())


def options_in_help(text: str) -> dict[str, str]:
    """Each option of a ``--help`` output, by its first flag, with every flag and its help.

    Works on argparse's layout whatever the width: an option starts a line with two spaces and
    a dash; its help follows on the same line or on more indented ones.
    """
    options: dict[str, str] = {}
    current = None
    section = ""
    for line in text.splitlines():
        if line and not line.startswith(" "):
            section = line  # "usage: …", the description, "options:"
            current = None
            continue
        if not section.endswith(":") or section.startswith("usage"):
            continue
        match = re.match(r"^  (-\S.*?)(?:\s{2,}(\S.*))?$", line)
        if match:
            flags = [f.split(" ")[0] for f in match.group(1).split(", ")]
            current = " ".join(flags)
            options[current] = match.group(2) or ""
        elif current is not None and line.startswith("   "):
            options[current] += " " + line.strip()
    return options


def flags(options: dict[str, str]) -> set[str]:
    return {flag for key in options for flag in key.split(" ")}


def common_flags() -> set[str]:
    """Django's own options, which every management command has."""
    return flags(options_in_help(BaseCommand().create_parser("manage.py", "x").format_help()))


def own_options(command: str) -> dict[str, str]:
    common = common_flags()
    return {
        key: text
        for key, text in options_in_help(help_text(command)).items()
        if not set(key.split(" ")) & common
    }


# -- reading the docs' side ----------------------------------------------------------


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line), up to the next heading of its level
    or above; lines in fenced code blocks are never headings."""
    level = len(heading.split(" ")[0])
    lines = text.splitlines()
    assert heading in lines, f"no heading {heading!r}"
    start = lines.index(heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        fenced ^= lines[end].startswith("```")
        if not fenced and re.match(rf"^#{{1,{level}}} ", lines[end]):
            return "\n".join(lines[start:end])
    return "\n".join(lines[start:])


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in ``text``, as lists of cells."""
    rows = []
    for line in text.splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:] if rows else rows  # the first row is the header


def documented_flags(rows: list[list[str]]) -> set[str]:
    return {f for row in rows for f in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", row[0])}


def command_section(command: str) -> str:
    return section(page("usage.md"), f"## `{command}`")


# -- the commands reference: docs/usage.md -------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_is_documented_and_only_those(command: str) -> None:
    in_help = flags(own_options(command))
    rows = table_rows(section(command_section(command), "### Options"))
    in_docs = documented_flags(rows)

    assert in_help - in_docs == set(), f"docs/usage.md, {command}: document these options"
    assert in_docs - in_help == set(), f"docs/usage.md, {command}: these options are gone"


def test_djangos_common_options_are_documented_once() -> None:
    shown = set().union(*(flags(options_in_help(help_text(c))) for c in COMMANDS))
    common = shown & common_flags()
    in_docs = documented_flags(table_rows(section(page("usage.md"), "## Django's common options")))

    assert common == in_docs, "docs/usage.md, Django's common options"


def options_with_a_setting() -> list[tuple[str, str, str]]:
    """(command, option, setting) for every option whose default is a setting."""
    return [
        (command, key, setting)
        for command in COMMANDS
        for key, text in own_options(command).items()
        for setting in SETTING.findall(text)
    ]


def test_an_option_that_defaults_to_a_setting_documents_that_setting_and_its_default() -> None:
    found = options_with_a_setting()
    assert found, "no option names its setting in --help: this test checks nothing"
    for command, key, setting in found:
        rows = table_rows(section(command_section(command), "### Options"))
        row = next(r for r in rows if set(key.split(" ")) & documented_flags([r]))
        cells = " | ".join(row[1:])
        assert setting in cells, f"docs/usage.md, {command} {key}: name TASKMASTER[{setting!r}]"
        assert str(DEFAULTS[setting]) in cells, f"docs/usage.md, {command} {key}: its default"


def test_the_help_shows_the_defaults_in_force() -> None:
    found = options_with_a_setting()
    assert found, "no option names its setting in --help: this test checks nothing"
    for command, key, setting in found:
        default = DEFAULTS[setting]
        other = (not default) if isinstance(default, bool) else default + 7
        with override_settings(TASKMASTER={setting: other}):
            shown = own_options(command)[key]
        assert f"now {other}" in shown, f"{command} {key} --help: {shown}"


def test_the_exit_codes_of_prepare_deploy_are_every_code_of_the_contract() -> None:
    rows = table_rows(section(command_section("prepare_deploy"), "### Exit codes"))
    documented = {int(n) for row in rows for n in re.findall(r"\d+", row[0])}
    contract = {int(code) for code in ExitCode} | {128 + int(s) for s in STOP_SIGNALS}

    assert documented == contract, "docs/usage.md, prepare_deploy: the exit codes table"


@pytest.mark.parametrize("command", ["resume_consumers", "sync_task_registry"])
def test_the_other_commands_document_only_codes_of_the_contract(command: str) -> None:
    rows = table_rows(section(command_section(command), "### Exit codes"))
    documented = {int(n) for row in rows for n in re.findall(r"\d+", row[0])}

    assert documented and documented <= {int(code) for code in ExitCode}


def test_every_key_of_the_json_report_is_documented_and_only_those(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A bad option still prints the one JSON object, with every key (the command contract).
    with pytest.raises(SystemExit):
        execute_from_command_line(["manage.py", "prepare_deploy", "--json", "--timeout", "0"])
    report = json.loads(capsys.readouterr().out)
    rows = table_rows(section(command_section("prepare_deploy"), "### The JSON report"))
    documented = {key for row in rows for key in re.findall(r"`(\w+)`", row[0])}

    assert set(report) - documented == set(), "docs/usage.md: document these report keys"
    assert documented - set(report) == set(), "docs/usage.md: these report keys are gone"


def test_the_docs_a_help_text_points_to_exist() -> None:
    named = {m for c in COMMANDS for m in re.findall(r"docs/[\w/.-]+\.md", help_text(c))}
    assert all((ROOT / path).is_file() for path in named), named


# -- the settings reference: docs/settings.md ----------------------------------------


def test_every_setting_has_a_heading_with_its_default_and_only_settings_do() -> None:
    text = page("settings.md")
    headings = re.findall(r"^## `([A-Z_]+)`$", text, flags=re.MULTILINE)

    assert sorted(headings) == sorted(DEFAULTS), "docs/settings.md: one heading per setting"
    for key in headings:
        match = re.search(r"\*\*Default:\*\* `([^`]*)`", section(text, f"## `{key}`"))
        assert match, f"docs/settings.md, {key}: no **Default:** line"
        assert ast.literal_eval(match.group(1)) == DEFAULTS[key], f"docs/settings.md, {key}"


def test_the_docs_name_no_setting_that_does_not_exist() -> None:
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md"]
    named = {(p.name, key) for p in pages for key in SETTING.findall(p.read_text())}
    unknown = sorted((name, key) for name, key in named if key not in DEFAULTS)

    assert unknown == [], "these pages name settings that do not exist"


def test_every_system_check_id_is_documented_and_the_docs_invent_none() -> None:
    code = {i for f in (ROOT / "taskmaster").rglob("*.py") for i in CHECK_ID.findall(f.read_text())}
    rows = table_rows(section(page("settings.md"), "## System check ids"))
    table = {i for row in rows for i in CHECK_ID.findall(row[0])}
    anywhere = {i for p in DOCS.rglob("*.md") for i in CHECK_ID.findall(p.read_text())}

    assert code - table == set(), "docs/settings.md, System check ids: document these"
    assert anywhere - code == set(), "the docs name check ids the code does not have"


# -- README, quickstart, version, the site ------------------------------------------


def console_block(markdown: str, heading: str) -> str:
    """The first ```console block under the heading that starts with ``heading``."""
    after = markdown.split("\n" + heading, 1)
    assert len(after) == 2, f"no heading starting {heading!r}"
    match = re.search(r"```console\n.*?\n```", after[1], flags=re.DOTALL)
    assert match, f"no console block under {heading!r}"
    return match.group(0)


@pytest.mark.parametrize("heading", ["## The two commands", "## A walkthrough with the demo"])
def test_the_quickstart_shows_the_readmes_commands_verbatim(heading: str) -> None:
    block = console_block((ROOT / "README.md").read_text(), heading)
    assert block in page("quickstart.md"), f"docs/quickstart.md: copy the README's {heading!r}"


def test_the_readmes_links_lead_somewhere() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", readme)}
    missing = sorted(t for t in targets if "://" not in t and not (ROOT / t).exists())
    assert missing == []


def test_the_version_is_one_and_the_changelog_knows_it() -> None:
    version = Version(taskmaster.__version__)  # a valid PEP 440 version
    installed = importlib.metadata.version("django-taskmaster")
    assert installed == taskmaster.__version__, "reinstall: pip install -e ."
    sections = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    released = [Version(s) for s in sections if s != "Unreleased"]
    assert sections and sections[0] in ("Unreleased", str(version)), "CHANGELOG.md"
    assert all(v <= version for v in released), "CHANGELOG.md names a version above this one"


def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("mkdocs is missing: pip install -e '.[docs]' (CI builds the site)")
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "index.html").is_file()


# -- every documented behaviour has its tests: tests/behaviour.py --------------------


def documented_behaviour() -> set[str]:
    """The keys tests/behaviour.py must have: each option and exit code of each command, and
    each of Django's common options (by its longest flag)."""
    keys = set()
    for command in COMMANDS:
        text = command_section(command)
        if "### Options" in text.splitlines():
            for row in table_rows(section(text, "### Options")):
                keys |= {f"{command} {max(documented_flags([row]), key=len)}"}
        for row in table_rows(section(text, "### Exit codes")):
            keys |= {f"{command} exit {n}" for n in re.findall(r"\d+", row[0])}
    common = table_rows(section(page("usage.md"), "## Django's common options"))
    return keys | {f"common {max(documented_flags([row]), key=len)}" for row in common}


def test_every_documented_option_and_exit_code_has_its_tests_and_only_those() -> None:
    from tests.behaviour import BEHAVIOUR

    documented = documented_behaviour()
    assert documented - set(BEHAVIOUR) == set(), "tests/behaviour.py: map these to their tests"
    assert set(BEHAVIOUR) - documented == set(), "tests/behaviour.py: no longer documented"


def test_every_test_the_behaviour_map_names_exists() -> None:
    from tests.behaviour import BEHAVIOUR

    missing = []
    for entry, tests in BEHAVIOUR.items():
        assert tests, f"tests/behaviour.py: {entry} names no test"
        for node in tests:
            path, _, name = node.partition("::")
            module = ast.parse((ROOT / path).read_text()) if (ROOT / path).exists() else None
            defined = {
                f.name for f in getattr(module, "body", []) if isinstance(f, ast.FunctionDef)
            }
            if name not in defined:
                missing.append(f"{entry}: {node}")
    assert not missing, "tests/behaviour.py names tests that do not exist:\n" + "\n".join(missing)
