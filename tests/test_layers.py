"""The package layering of docs/design: imports run downward and never in a circle.

ir is the bottom; runtime and passes stand on ir (passes also evaluate through
runtime's interpreter); codegen stands on both; compiler, the front doors, on
everything. Imports inside functions count too: a deferred import still ties
the layers together.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "ir": {"ir"},
    "runtime": {"ir", "runtime"},
    "passes": {"ir", "runtime", "passes"},
    "codegen": {"ir", "runtime", "passes", "codegen"},
    "compiler": {"ir", "runtime", "passes", "codegen", "compiler"},
}


def _module_files() -> dict[str, Path]:
    files = {}
    for package in ALLOWED:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = path
    return files


def _imported(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules one file imports; `from pkg import sub` names the submodule."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            found.update(submodules or {base})
    return {name for name in found if name in known and name != module}


@pytest.fixture(scope="module")
def import_graph() -> nx.DiGraph:
    files = _module_files()
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for module, path in files.items():
        graph.add_edges_from((module, target) for target in _imported(module, path, files))
    return graph


def test_the_reader_sees_the_imports(import_graph: nx.DiGraph) -> None:
    assert import_graph.number_of_nodes() > 50
    assert ("codegen.link", "codegen.objsyms") in import_graph.edges
    assert ("passes.fold", "runtime.interp") in import_graph.edges


def test_imports_run_downward(import_graph: nx.DiGraph) -> None:
    upward = [
        f"{source} imports {target}"
        for source, target in import_graph.edges
        if target.split(".")[0] not in ALLOWED[source.split(".")[0]]
    ]
    assert upward == []


def test_no_module_imports_itself_through_others(import_graph: nx.DiGraph) -> None:
    cycles = [" -> ".join(cycle) for cycle in nx.simple_cycles(import_graph)]
    assert cycles == []


def test_no_module_borrows_another_modules_private_names() -> None:
    files = _module_files()
    borrowed = [
        f"{module} takes {node.module}.{alias.name}"
        for module, path in files.items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ALLOWED
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert borrowed == []


def test_every_package_is_installed() -> None:
    """pyproject.toml lists packages one by one: a new folder missing there works in an
    editable install and is absent from a real one."""
    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for package in (*ALLOWED, "tessel")
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert found == listed
