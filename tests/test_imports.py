"""The module graph has no import cycle, function-level imports included (docs/design.md, layout).

Every ``import`` and ``from ... import`` of the package is collected from each module's syntax tree,
wherever it appears (module level, inside functions, under ``if``, under ``if TYPE_CHECKING:``: a
cycle made only for type hints still ties the modules together), and the graph of modules must be
acyclic; so must the graph of top-level stages (``audio``, ``analysis``, ``tokens``, ``models``,
``backends``, ``rendering``, ``output``, ``live`` and the command modules), which is the layering
drawn in docs/architecture.svg.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "aadiff_live"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_files(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """``{dotted name: (file, is_package)}`` for every module of the package under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, from every import statement in the file."""
    mods = module_files(root)
    graph: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        here = name if is_pkg else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from .x import y
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                for a in node.names:  # "from pkg import submodule" imports the submodule
                    sub = f"{source}.{a.name}"
                    targets.add(sub if sub in mods else source)
        graph[name] = {t for t in targets if t in mods and t != name}
    return graph


def stage_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph with each module replaced by its stage (``aadiff_live.<first part>``)."""
    stage = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    out: dict[str, set[str]] = {stage(m): set() for m in graph}
    for m, targets in graph.items():
        out[stage(m)].update(stage(t) for t in targets if stage(t) != stage(m))
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (depth-first search with colours)."""
    colour: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in colour and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        colour[node] = 2
        return None

    for node in sorted(graph):
        if node not in colour and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_cycle_between_stages():
    cycle = find_cycle(stage_graph(import_graph()))
    assert cycle is None, "import cycle between stages: " + " -> ".join(cycle or [])


def test_the_graph_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from aadiff_live.sub import b\n")
    (pkg / "sub" / "b.py").write_text("if True:\n    from .. import a\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aadiff_live import a\n")
    graph = import_graph(pkg)
    assert graph["aadiff_live.a"] == {"aadiff_live.sub.b"}
    assert graph["aadiff_live.sub.b"] == {"aadiff_live.a"}
    assert graph["aadiff_live.sub.c"] == {"aadiff_live.a"}  # imports for type checking count too
    assert find_cycle(graph) == ["aadiff_live.a", "aadiff_live.sub.b", "aadiff_live.a"]
    assert find_cycle(stage_graph(graph)) == ["aadiff_live.a", "aadiff_live.sub", "aadiff_live.a"]
    (pkg / "sub" / "b.py").write_text("")
    (pkg / "a.py").write_text("from aadiff_live.sub import c\n")  # a cycle through type hints only: a -> c -> a
    assert find_cycle(import_graph(pkg)) == ["aadiff_live.a", "aadiff_live.sub.c", "aadiff_live.a"]
    (pkg / "sub" / "c.py").write_text("")
    assert find_cycle(graph := import_graph(pkg)) is None and find_cycle(stage_graph(graph)) is None


def test_find_cycle_names_the_modules():
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"x"}}) == ["x", "y", "z", "x"]
    assert find_cycle({"x": {"y"}, "y": set(), "z": {"x", "y"}}) is None
