"""The package's layout: no module imports itself back, through any chain, typing-only imports
included (a cycle there is a layering mistake all the same); the core never imports the
faces; public names report the public module they are imported from."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import gangamon

SRC = Path(gangamon.__file__).parent.parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, wherever in it (functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.update({target, *(f"{target}.{alias.name}" for alias in node.names)})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return (found & modules) - {name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    paths = list((SRC / "gangamon").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    graph = {module_name(p): imports(p, modules) for p in paths}
    assert len(graph) > 50  # the walk found the package
    assert cycles(graph) == []


def test_the_core_never_imports_the_faces() -> None:
    """The command, its configuration, service and views (`gangamon.cli`) sit on the core;
    nothing else imports them (the Ganga shim and `embed` included). Fails if one does."""
    paths = list((SRC / "gangamon").rglob("*.py"))
    modules = {module_name(p) for p in paths}
    faces = {m for m in modules if m == "gangamon.cli" or m.startswith("gangamon.cli.")}
    faces.add("gangamon.__main__")  # `python -m gangamon`: the command too
    assert "gangamon.cli._config" in faces
    inward = {
        name: sorted(found & faces)
        for p in paths
        if (name := module_name(p)) not in faces and (found := imports(p, modules)) & faces
    }
    assert inward == {}


def test_a_cycle_is_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize(
    "package", ["gangamon", "gangamon.backends", "gangamon.backends.dirac", "gangamon.ganga"]
)
def test_public_names_report_a_public_module(package: str) -> None:
    namespace = vars(importlib.import_module(package))
    reported = {
        name: value.__module__
        for name, value in namespace.items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert reported  # the package has public classes and functions
    private = {n: m for n, m in reported.items() if m.startswith("gangamon") and "._" in m}
    assert private == {}
    # Each still pickles by the name it reports.
    assert all(
        getattr(importlib.import_module(m), n, None) is not None for n, m in reported.items()
    )
