"""fairdml's modules import one way, down the layers, and in no circle.

No import cycle: a cycle works only while imports stay inside functions, and breaks the first time someone moves
one to the top of a file (as audit -> card.write -> card.run -> audit did). No upward arrow: each module belongs
to one layer of `LAYERS` and imports only from its own layer or those below, so a low layer never needs a high
one (as the config's value rules once imported the callbacks through the whole-config check). A new module at
the package root fails `test_every_module_has_a_layer` until it is named in a layer: the root holds layers and
commands, and small helpers go into `fairdml/utils/`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fairdml

PACKAGE_ROOT = Path(fairdml.__file__).parent

# Bottom to top: the data flow (config -> data -> model -> losses -> callbacks -> metrics -> reports) in the order
# the imports need it. Metrics sit below the model (DMLModule and PARADE measure with EmbeddingFairness), losses
# below the model that builds them, reports below the callbacks (FairnessMonitor writes the report and card),
# and the whole-config check above the callbacks and loggers it builds. An entry is a package with everything in
# it, or a module at the root; `fairdml` itself holds `__version__` and lazy names only (it imports utils/_lazy).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("utils", ("fairdml", "fairdml.utils")),
    ("config", ("fairdml.config", "fairdml.config_rules", "fairdml.config_keywords")),
    ("data", ("fairdml.data",)),
    ("metrics", ("fairdml.metrics",)),
    ("downstream", ("fairdml.downstream",)),
    ("losses", ("fairdml.losses",)),
    ("models", ("fairdml.models",)),
    ("mitigations", ("fairdml.mitigations",)),
    ("loggers", ("fairdml.loggers",)),
    ("reports", ("fairdml.reports",)),
    ("callbacks", ("fairdml.callbacks",)),
    ("config check", ("fairdml.config_checks",)),
    ("commands", ("fairdml.resume", "fairdml.train", "fairdml.evaluate", "fairdml.export", "fairdml.sweep")),
    ("cli", ("fairdml.cli", "fairdml.__main__")),
]


def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    modules = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def imported_names(tree: ast.AST, package: str) -> set[str]:
    """Every name an import statement anywhere in the file (top level or inside functions) may load."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def import_graph() -> dict[str, set[str]]:
    """fairdml module -> the fairdml modules it imports."""
    modules = module_files()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        imported = imported_names(ast.parse(path.read_text(encoding="utf-8")), package)
        graph[name] = {other for other in imported if other in modules and other != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that returns to its start, or None; depth-first with the path on a stack."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path = [start], {start}
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:  # every import of path[-1] explored: no cycle through it
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                stack.pop()
                continue
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                path.append(nxt)
                on_path.add(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_graph_sees_imports_inside_functions() -> None:
    graph = import_graph()
    assert "fairdml.reports.card.write" in graph["fairdml.reports.audit"]  # imported inside run_audit


def test_find_cycle_reports_the_loop() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_among_fairdml_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]] = LAYERS) -> int | None:
    """The index in `layers` of the entry that holds `module` (the longest that matches), or None."""
    matches = [
        (len(entry), index)
        for index, (_, entries) in enumerate(layers)
        for entry in entries
        if module == entry or (entry != "fairdml" and module.startswith(entry + "."))
    ]
    return max(matches)[1] if matches else None


def upward_arrows(
    graph: dict[str, set[str]], layers: list[tuple[str, tuple[str, ...]]] = LAYERS
) -> list[tuple[str, str]]:
    """Every import (a, b) where b is in a higher layer than a, sorted."""
    rank = {module: layer_of(module, layers) for module in graph}
    arrows = [(a, b) for a, imports in graph.items() for b in imports if None not in (rank[a], rank[b])]
    return sorted((a, b) for a, b in arrows if rank[b] > rank[a])  # type: ignore[operator]


def test_upward_arrows_are_found():
    layers = [("low", ("pkg.low",)), ("high", ("pkg.high",))]
    graph = {"pkg.low.a": {"pkg.high.b"}, "pkg.high.b": {"pkg.low.c"}, "pkg.low.c": set()}
    assert upward_arrows(graph, layers) == [("pkg.low.a", "pkg.high.b")]


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in import_graph() if layer_of(module) is None)
    assert not unplaced, f"modules in no layer of LAYERS (a helper goes into fairdml/utils/): {unplaced}"


def test_imports_point_down_the_layers():
    names = [name for name, _ in LAYERS]
    arrows = upward_arrows(import_graph())
    lines = [f"{a} ({names[layer_of(a)]}) -> {b} ({names[layer_of(b)]})" for a, b in arrows]  # type: ignore[index]
    assert not arrows, f"{len(arrows)} upward import(s):\n" + "\n".join(lines)


def part_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports between the package's parts: a subpackage with everything in it, or a module at the root."""
    parts: dict[str, set[str]] = {}
    for module, imports in graph.items():
        part = ".".join(module.split(".")[:2])
        parts.setdefault(part, set()).update(".".join(other.split(".")[:2]) for other in imports)
        parts[part].discard(part)
    return parts


def test_no_circle_among_the_parts_of_the_package():
    """Stricter than no module cycle: models -> mitigations -> models would be a circle even between modules
    that never import each other."""
    cycle = find_cycle(part_graph(import_graph()))
    assert cycle is None, "import circle between parts: " + " -> ".join(cycle or [])
