"""The layout of ``src/cfnet`` holds (its map: ``src/cfnet/__init__.py``, docs/development.md):
no import circle, and no module importing from a role above its own.

Every import counts, at the top of a module or inside a function or a ``TYPE_CHECKING`` block:
each is a dependency. Read from the source with ``ast``, nothing imported. One exception: the
root package's ``__getattr__`` re-exports ``cfnet.from_pretrained`` on first use (PEP 562), after
``cfnet`` itself is imported, so the root still imports nothing (``LAZY``).
"""

from __future__ import annotations

import ast
from pathlib import Path

from support.configs import ROOT

SRC = ROOT / "src"
# The roles, from the ground floor up: a module imports only from its own package and from the
# floors below. models/ and data/ share a floor and import nothing of each other, as do lit/ and
# explorer/ (the web explorer needs a Segmentor, not Lightning).
FLOORS = {
    "utils": 0,
    "models": 1,
    "data": 1,
    "evaluation": 2,
    "analysis": 3,
    "lit": 4,
    "explorer": 4,
    "cli": 5,
}
ENTRY_POINTS = {
    "train", "evaluate", "predict", "export", "prepare", "stats", "report", "explore",
    "cooccurrence",
}  # fmt: skip
TOP = 6  # the entry points


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted((SRC / "cfnet").rglob("*.py"))}


def _lazy_nodes(name: str, tree: ast.Module) -> set[int]:
    """The import nodes inside the root package's ``__getattr__``: its lazy re-exports."""
    if name != "cfnet":
        return set()
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
    return {id(node) for f in functions for node in ast.walk(f)}


def imported(name: str, path: Path, lazy: bool = False) -> set[str]:
    """The cfnet modules ``name`` imports: ``from a.b import c`` is ``a.b.c`` when that is a
    module, else ``a.b``. ``lazy``: only those the root package's ``__getattr__`` imports."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    lazy_nodes = _lazy_nodes(name, tree)
    for node in ast.walk(tree):
        if (id(node) in lazy_nodes) != lazy:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package (one level up per extra dot)
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return {m for m in found if m == "cfnet" or m.startswith("cfnet.")}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}
LAZY = imported("cfnet", MODULES["cfnet"], lazy=True)


def floor(name: str) -> tuple[str, int]:
    """(role, floor) of a module: its package under cfnet, or the entry points' top floor."""
    parts = name.split(".")
    if len(parts) == 1:
        return "cfnet", -1  # the package's own __init__: the map and the version, importing none
    if parts[1] in FLOORS:
        return parts[1], FLOORS[parts[1]]
    assert parts[1] in ENTRY_POINTS, f"{name}: a module of no role; add its package to FLOORS"
    return "entry points", TOP


def test_the_walk_sees_every_module_and_its_imports():
    assert {"cfnet.train", "cfnet.lit.module", "cfnet.utils.checks"} <= MODULES.keys()
    assert "cfnet.utils.checks" in GRAPH["cfnet.models.acf"]
    assert "cfnet.lit.module" in GRAPH["cfnet.lit"]  # the package re-exports it
    assert sum(map(len, GRAPH.values())) > 100
    for name in MODULES:
        floor(name)  # every module has a role
    assert GRAPH["cfnet"] == set()
    assert sorted(LAZY) == ["cfnet.models.segmentor"]  # cfnet.from_pretrained, on first use


def test_no_module_imports_from_a_role_above_its_own():
    upward = []
    for name, targets in GRAPH.items():
        role, level = floor(name)
        for target in sorted(targets):
            target_role, target_level = floor(target)
            if target_role != role and target_level >= level:
                upward.append(f"{name} ({role}) imports {target} ({target_role})")
    assert upward == []


def test_no_import_circle():
    """Tarjan's strongly connected components: a component of more than one module, or a
    module importing itself, is a circle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for target in GRAPH.get(name, ()):
            if target not in index:
                visit(target)
                low[name] = min(low[name], low[target])
            elif target in stack:
                low[name] = min(low[name], index[target])
        if low[name] == index[name]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == name:
                    break
            if len(component) > 1 or name in GRAPH.get(name, ()):
                circles.append(sorted(component))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert circles == []
