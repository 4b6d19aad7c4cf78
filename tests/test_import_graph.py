"""bakthat's modules import each other without a cycle, and stay under ~500 lines unless they say why.

The graph is read from the source with ``ast`` (nothing is imported): an edge A -> B
for every ``import`` or ``from ... import`` in A naming a module of the package B (or a
name of B).  Imports under ``if TYPE_CHECKING:`` are type hints only and left out.

Two rules:

* no cycle among **module-level** imports, ever (those run at import time);
* no cycle among **all** imports, function-level ones included, except through the
  edges of :data:`ALLOWED_LAZY`, each a function-level import with its reason.  A
  function-level import is how a module reaches a heavier or later one at call time
  (``bakthat --help`` stays fast, importing bakthat opens nothing); it is not a
  licence for two modules to need each other, so each allowed edge is named here and
  the test fails if one of them is no longer in the code (the list stays honest).
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "bakthat"

#: Function-level edges allowed to close a cycle: (importer, imported) -> why.
ALLOWED_LAZY: dict[tuple[str, str], str] = {
    ("bakthat.models", "bakthat.migrations"): (
        "binding a catalog brings its schema up to date, and the schema steps are written "
        "with the models' tables: models.bind imports the upgrade when a catalog is bound"
    ),
}
#: The line count above which a module's docstring must say why it is that long.
LONG = 500


def module_names(root: Path) -> dict[str, Path]:
    """Given a package directory, return ``{dotted module name: file}`` for its modules."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(root: Path) -> dict[str, dict[str, bool]]:
    """Given a package directory, return ``{module: {imported module: module-level?}}``."""
    modules = module_names(root)
    edges: dict[str, dict[str, bool]] = {}
    for name, path in modules.items():
        found: dict[str, bool] = {}
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

        def visit(node: ast.AST, top: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                    continue
                nested = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                targets: list[str] = []
                if isinstance(child, ast.Import):
                    targets = [alias.name for alias in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = child.module or ""
                    if child.level:
                        parent = package[: len(package) - (child.level - 1)]
                        base = ".".join([*parent, *([base] if base else [])])
                    targets = [f"{base}.{alias.name}" for alias in child.names] + [base]
                for target in targets:
                    resolved = _resolve(target, modules)
                    if resolved is not None and resolved != name and not name.startswith(resolved + "."):
                        found[resolved] = found.get(resolved, False) or top
                visit(child, nested)

        visit(ast.parse(path.read_text(encoding="utf-8")), True)
        edges[name] = found
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Given ``{module: imported modules}``, return its cycles (strongly connected
    components of two or more modules), each sorted, in sorted order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def strong(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                strong(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strong(node)
    return sorted(found)


def graph_of(edges: dict[str, dict[str, bool]], module_level_only: bool, leave_out: set[tuple[str, str]] = set()) -> dict[str, set[str]]:
    return {
        name: {other for other, top in imported.items() if (top or not module_level_only) and (name, other) not in leave_out}
        for name, imported in edges.items()
    }


def test_the_module_level_imports_of_bakthat_have_no_cycle():
    assert cycles(graph_of(import_edges(PACKAGE), module_level_only=True)) == []


def test_all_imports_of_bakthat_have_no_cycle_but_through_the_allowed_lazy_edges():
    allowed = set(ALLOWED_LAZY)
    assert cycles(graph_of(import_edges(PACKAGE), module_level_only=False, leave_out=allowed)) == []


@pytest.mark.parametrize("edge", sorted(ALLOWED_LAZY))
def test_every_allowed_lazy_edge_is_a_function_level_import_still_in_the_code(edge):
    importer, imported = edge
    assert import_edges(PACKAGE)[importer].get(imported) is False, f"{importer} -> {imported} is gone or module-level"


def test_the_cycle_check_finds_a_cycle_made_by_a_function_level_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text(textwrap.dedent("""\
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            from pkg import c
        def later():
            from pkg.a import thing
    """))
    (package / "c.py").write_text("import pkg.b\n")
    edges = import_edges(package)
    assert edges["pkg.a"] == {"pkg.b": True} and edges["pkg.b"] == {"pkg.a": False}
    assert cycles(graph_of(edges, module_level_only=True)) == []
    assert cycles(graph_of(edges, module_level_only=False)) == [["pkg.a", "pkg.b"]]
    assert cycles(graph_of(edges, module_level_only=False, leave_out={("pkg.b", "pkg.a")})) == []
def test_every_module_over_500_lines_says_why_in_its_docstring():
    # "longer than most (about N lines) because ...": the reason, in the docstring.
    unexplained = []
    for name, path in module_names(PACKAGE).items():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines <= LONG:
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "lines" not in docstring or "because" not in docstring:
            unexplained.append(f"{name} ({lines} lines)")
    assert unexplained == []
