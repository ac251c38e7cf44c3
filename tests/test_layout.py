"""The package's layout: no import cycles, and no private name used outside its module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "miripersist"


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        name = ".".join(path.relative_to(SRC).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _is_main_block(node: ast.stmt) -> bool:
    # ``if __name__ == "__main__":`` runs only when the module is the program, never on
    # import, so what it imports is no dependency of the module.
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    )


def _is_type_checking_block(node: ast.stmt) -> bool:
    # ``if TYPE_CHECKING:`` runs only under a type checker: its imports name the types of
    # annotations (a rule's hooks take Parameters, Parameters finds its rule), never run.
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    )


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """(module, name imported from it) for each import of the package a module runs."""
    tree = ast.parse(path.read_text())
    body = [
        node for node in tree.body if not (_is_main_block(node) or _is_type_checking_block(node))
    ]
    here = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = base + (f".{node.module}" if node.module else "")
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.append((sub, "") if sub in known else (target, alias.name))
        elif isinstance(node, ast.Import):
            out.extend((alias.name, "") for alias in node.names)
    return [(m, n) for m, n in out if m.split(".")[0] == PACKAGE and m != name]


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                found.append(sorted([v, *component]))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def graph() -> tuple[dict[str, set[str]], list[str]]:
    """The package's import graph, and its imports of private names across modules."""
    known = modules()
    edges: dict[str, set[str]] = {name: set() for name in known}
    private = []
    for name, path in known.items():
        for module, imported in imports(name, path, known):
            if module in known:
                edges[name].add(module)
            if imported.startswith("_") and not imported.startswith("__"):
                private.append(f"{name} imports {module}.{imported}")
    return edges, private


def test_no_import_cycles():
    edges, _ = graph()
    assert cycles(edges) == []


def test_no_private_name_is_imported_from_another_module():
    _, private = graph()
    assert private == []


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert cycles(edges) == expected


def test_the_import_reader_sees_relative_and_lazy_imports(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from .b import _hidden\n"
        "def f():\n    from .sub import c\n"
        'if __name__ == "__main__":\n    from . import d\n'
    )
    known = {f"{PACKAGE}.{n}": package / f"{n}.py" for n in ("a", "b", "d")}
    known[f"{PACKAGE}.sub.c"] = package / "sub" / "c.py"
    got = imports(f"{PACKAGE}.a", package / "a.py", known)
    assert got == [(f"{PACKAGE}.b", "_hidden"), (f"{PACKAGE}.sub.c", "")]
