"""Import boundaries of the engine, read from the source (no module is imported).

Imports run one way: ui, commands -> lessons, evaluation -> inference -> models, data -> config,
errors. Only the ui layer imports streamlit, and no two modules import each other in a circle
(function-level imports count too: hiding a circle inside a function does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "unet_demo"

# Which engine packages each package may not import (directly or inside a function).
FORBIDDEN = {
    "data": {"models", "inference", "evaluation", "training", "plots", "lessons", "commands",
             "ui"},
    "models": {"inference", "evaluation", "training", "plots", "lessons", "commands", "ui"},
    "inference": {"evaluation", "training", "plots", "lessons", "commands", "ui"},
    "evaluation": {"training", "plots", "lessons", "commands", "ui"},
    "plots": {"data", "models", "inference", "evaluation", "training", "lessons", "commands",
              "ui"},
    "training": {"lessons", "commands", "ui"},
    "lessons": {"commands", "ui"},
    "commands": {"ui"},
}
STREAMLIT_ALLOWED = ("unet_demo/ui/", "pages/", "streamlit_app.py")
MAX_ROOT_MODULES = 8


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[str, int]]:
    """(module, line) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module_name(path, root).split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            found.append((base, node.lineno))
            # "from unet_demo.data import sources" imports the module unet_demo.data.sources
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def engine_files(root: Path = ROOT) -> list[Path]:
    return sorted((root / "unet_demo").rglob("*.py"))


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "unet_demo" else None


def boundary_violations(files: list[Path], root: Path = ROOT) -> list[str]:
    problems = []
    for path in files:
        in_engine = path.is_relative_to(root / "unet_demo")
        source_layer = layer(module_name(path, root)) if in_engine else None
        relative = path.relative_to(root).as_posix()
        for target, line in imported_modules(path, root):
            if target.split(".")[0] == "streamlit" and not relative.startswith(STREAMLIT_ALLOWED):
                problems.append(f"{relative}:{line} imports streamlit (only ui/ and pages/ may)")
            target_layer = layer(target)
            if source_layer in FORBIDDEN and target_layer in FORBIDDEN[source_layer]:
                problems.append(f"{relative}:{line} ({source_layer}) imports {target}")
    return problems


def import_cycles(files: list[Path], root: Path = ROOT) -> list[list[str]]:
    """Strongly connected groups of two or more project modules (Tarjan's algorithm)."""
    known = {module_name(path, root) for path in files}
    graph: dict[str, set[str]] = {}
    for path in files:
        source = module_name(path, root)
        targets = {t for t, _ in imported_modules(path, root) if t in known and t != source}
        # A package's __init__ is not a real dependency of its own modules.
        graph[source] = {t for t in targets if not source.startswith(t + ".")}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_engine_layers_import_one_way():
    files = engine_files() + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "streamlit_app.py"]
    assert boundary_violations(files) == []


def test_no_import_circles():
    assert import_cycles(engine_files()) == []


def test_few_modules_directly_under_the_package():
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules


@pytest.mark.parametrize(("path", "source", "expected"), [
    ("unet_demo/data/demo.py", "from unet_demo.inference import registry\n", "imports"),
    ("unet_demo/models/demo.py", "import streamlit as st\n", "streamlit"),
    ("unet_demo/inference/demo.py", "def f():\n    from unet_demo.evaluation import scores\n",
     "imports"),
])
def test_a_broken_rule_is_reported(tmp_path, path, source, expected):
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    target.write_text(source)
    problems = boundary_violations([target], tmp_path)
    assert len(problems) == 1 and expected in problems[0]


def test_a_circle_is_reported(tmp_path):
    (tmp_path / "unet_demo" / "data").mkdir(parents=True)
    (tmp_path / "unet_demo" / "data" / "a.py").write_text("from unet_demo.data import b\n")
    (tmp_path / "unet_demo" / "data" / "b.py").write_text(
        "def f():\n    from unet_demo.data.a import x\n")
    assert import_cycles(engine_files(tmp_path), tmp_path) == [
        ["unet_demo.data.a", "unet_demo.data.b"]]
