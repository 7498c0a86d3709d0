"""The package's layers hold: every import goes down, none sideways, and no module imports
itself back through others (docs/architecture.md). Imports are read from the source, those
inside functions and under ``TYPE_CHECKING`` included: a lazy import is still a tie."""

from __future__ import annotations

import ast
from pathlib import Path

import taskmaster

PACKAGE = Path(taskmaster.__file__).parent

# Bottom to top. A module may import the layers below its own, and its own package.
LAYERS = [
    {
        "taskmaster",
        "taskmaster.credentials",
        "taskmaster.exits",
        "taskmaster.humanize",
        "taskmaster.tasks",
    },
    {"taskmaster.log", "taskmaster.signals"},
    {"taskmaster.conf", "taskmaster.cli"},
    {"taskmaster.gate"},
    {"taskmaster.cluster", "taskmaster.models", "taskmaster.output"},
    {"taskmaster.checks", "taskmaster.metrics", "taskmaster.notifications"},
    {"taskmaster.drain", "taskmaster.apps"},
    {"taskmaster.api"},
    {"taskmaster.readiness", "taskmaster.management"},
    {"taskmaster.admin", "taskmaster.templatetags"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layer entry a module belongs to: its subpackage, or itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def rank(module: str) -> int:
    for level, units in enumerate(LAYERS):
        if unit(module) in units:
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (docs/architecture.md)")


def sources() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in sorted(PACKAGE.rglob("*.py"))
        if "migrations" not in path.parts
    }


def imports() -> dict[str, set[str]]:
    """Each module of the package and the taskmaster modules it imports (a module's own
    package's ``__init__``, which Python runs first whatever is imported, aside)."""
    modules = sources()
    found: dict[str, set[str]] = {}
    for module, path in modules.items():
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                for alias in node.names:
                    # "from taskmaster.admin import launches" imports the module launches;
                    # "from taskmaster.gate.rules import Gate", a name of the module rules.
                    submodule = f"{node.module}.{alias.name}"
                    names.add(submodule if submodule in modules else node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
        found[module] = {
            n for n in names if n.split(".")[0] == "taskmaster" and not module.startswith(n + ".")
        }
    return found


def known(name: str, modules: set[str]) -> str | None:
    """The module an imported name is, or is defined in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def test_every_import_goes_down_a_layer_or_stays_in_its_package() -> None:
    graph = imports()
    wrong = []
    for module, names in graph.items():
        for name in names:
            target = known(name, set(graph))
            if target is None or target == module or unit(target) == unit(module):
                continue
            if rank(target) >= rank(module):
                wrong.append(f"{module} imports {target}")
    assert wrong == [], "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_module_imports_itself_back() -> None:
    graph = imports()
    edges = {
        module: {t for n in names if (t := known(n, set(graph))) and t != module}
        for module, names in graph.items()
    }
    cycles = []
    for start in edges:
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            node, path = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*path, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == [], "\n".join(cycles)


def test_the_layers_name_every_module() -> None:
    for module in imports():
        rank(module)
