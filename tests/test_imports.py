"""The import graph of moa/, read from the source with `ast` (nothing is imported):
no cycles between moa modules at import time, and no private name crossing a module boundary.

Import time means module-level statements (including those under `if`/`try` at module level, but not
under `if TYPE_CHECKING:`); imports inside functions run later, are allowed to point anywhere and are
only required to name something that exists. Private means one leading underscore (`_x`); dunders such
as `__version__` are public. A private submodule (`solvers/_x.py`) may be used by its own
package, not from outside it.
"""

from __future__ import annotations

import ast
import pathlib
from dataclasses import dataclass

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / "moa"


@dataclass(frozen=True)
class ImportUse:
    """One moa-internal name use: `importer` uses `name` of module `target` (name None: the module itself)."""

    importer: str
    target: str
    name: str | None
    line: int
    at_import_time: bool


def module_name(path: pathlib.Path, root: pathlib.Path = PACKAGE_DIR) -> str:
    """Dotted name of a source file under `root` (`moa/solvers/rodas4/solver.py` -> `moa.solvers.rodas4.solver`)."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(root: pathlib.Path = PACKAGE_DIR) -> dict[str, pathlib.Path]:
    """Every module of the package under `root`, by dotted name."""
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def is_private(name: str) -> bool:
    """One leading underscore, not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_with_scope(tree: ast.Module):
    """Yield (node, at_import_time) for every node; False under a function or an `if TYPE_CHECKING:`."""
    stack = [(child, True) for child in ast.iter_child_nodes(tree)]
    while stack:
        node, now = stack.pop()
        yield node, now
        deferred = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack += [(c, False) for c in node.body] + [(c, now) for c in node.orelse]
            continue
        stack += [(child, now and not deferred) for child in ast.iter_child_nodes(node)]


def _resolve(importer: str, is_package: bool, module: str | None, level: int) -> str | None:
    """Absolute module of an `import`/`from ... import`; None for imports from outside moa."""
    if level == 0:
        return module if module and (module == "moa" or module.startswith("moa.")) else None
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_uses(modules: dict[str, pathlib.Path]) -> list[ImportUse]:
    """Every use of one moa module by another: imports, and attribute access on an imported moa module."""
    uses = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        bound: dict[str, str] = {}  # local name -> moa module it refers to
        for node, now in _walk_with_scope(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    target = _resolve(importer, is_package, alias.name, 0)
                    if target:
                        uses.append(ImportUse(importer, target, None, node.lineno, now))
                        bound[alias.asname or alias.name.split(".")[0]] = target if alias.asname else "moa"
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(importer, is_package, node.module, node.level)
                if target is None:
                    continue
                for alias in node.names:
                    submodule = f"{target}.{alias.name}"
                    if submodule in modules:
                        uses.append(ImportUse(importer, submodule, None, node.lineno, now))
                        bound[alias.asname or alias.name] = submodule
                    else:
                        uses.append(ImportUse(importer, target, alias.name, node.lineno, now))
        for node, now in _walk_with_scope(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
                target = bound[node.value.id]
                if f"{target}.{node.attr}" not in modules:
                    uses.append(ImportUse(importer, target, node.attr, node.lineno, now))
    return uses


def top_level_names(path: pathlib.Path) -> set[str]:
    """Names a module binds at its top level (defs, classes, assignments, imports)."""
    names: set[str] = set()
    for node, now in _walk_with_scope(ast.parse(path.read_text())):
        if not now:
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def import_time_cycles(modules: dict[str, pathlib.Path], uses: list[ImportUse]) -> list[list[str]]:
    """Cycles in the graph of module-level imports between moa modules (each cycle once)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for u in uses:
        if u.at_import_time and u.target != u.importer and u.target in graph:
            graph[u.importer].add(u.target)
    cycles, seen = [], set()
    for start in sorted(graph):
        stack = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start:
                    key = frozenset(trail)
                    if key not in seen:
                        seen.add(key)
                        cycles.append(trail + [start])
                elif nxt not in trail and nxt > start:  # each cycle found from its smallest module
                    stack.append((nxt, trail + [nxt]))
    return cycles


def private_crossings(modules: dict[str, pathlib.Path], uses: list[ImportUse]) -> list[str]:
    """Uses of a private name (or private module) of one moa module by another, as readable lines."""
    found = []
    for u in uses:
        if u.importer == u.target:
            continue
        if u.name is not None and is_private(u.name):
            found.append(f"{u.importer}:{u.line} uses {u.target}.{u.name}")
        last = u.target.rsplit(".", 1)
        if u.name is None and len(last) == 2 and is_private(last[1]) and not u.importer.startswith(last[0] + "."):
            found.append(f"{u.importer}:{u.line} uses private module {u.target} from outside {last[0]}")
    return found


MODULES = package_modules()
USES = import_uses(MODULES)


def test_the_package_is_found():
    assert {
        "moa",
        "moa.symbolic.model",
        "moa.simulate",
        "moa.solvers.rodas4.stepper_numpy",
        "moa.mechanisms.binding",
    } <= set(MODULES)
    assert sum(u.at_import_time for u in USES) > 20 and sum(not u.at_import_time for u in USES) > 5


def test_no_import_cycles_at_import_time():
    cycles = import_time_cycles(MODULES, USES)
    assert not cycles, "module-level import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_crosses_a_module():
    found = private_crossings(MODULES, USES)
    assert not found, "private names used across moa modules:\n" + "\n".join(found)


def test_deferred_imports_name_something_that_exists():
    """Imports inside functions are allowed (listed here); each must still name a module or a top-level name."""
    deferred = sorted(
        {(u.importer, u.target, u.name) for u in USES if not u.at_import_time},
        key=lambda use: (use[0], use[1], use[2] or ""),
    )
    missing = [
        f"{i} -> {t}.{n}"
        for i, t, n in deferred
        if t not in MODULES or (n is not None and n not in top_level_names(MODULES[t]))
    ]
    assert not missing, "deferred imports of names that do not exist:\n" + "\n".join(missing)


def test_no_module_imports_upwards_from_the_package():
    """`from . import __version__` in a submodule reaches up into the package `__init__` (which imports the
    submodules); the version lives in its own module, so nothing inside moa needs a name from `moa` itself."""
    upward = [
        f"{u.importer}:{u.line} ({u.name})"
        for u in USES
        if u.target == "moa" and u.importer != "moa" and u.name is not None
    ]
    assert not upward, "imports of names from the moa package by its own modules: " + ", ".join(upward)


# The checks themselves can fail: each catches the defect it exists for, on a throwaway package.
@pytest.fixture()
def toy_package(tmp_path):
    def build(files: dict[str, str]) -> dict[str, pathlib.Path]:
        root = tmp_path / "moa"
        for rel, text in {"__init__.py": "", **files}.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        return package_modules(root)

    return build


def test_a_cycle_is_caught_and_a_deferred_one_is_not(toy_package):
    mods = toy_package(
        {
            "a.py": "from .b import f\n",
            "b.py": "from . import a\n",
            "c.py": "def g():\n    from .d import h\n",
            "d.py": "from .c import g\n",
        }
    )
    cycles = import_time_cycles(mods, import_uses(mods))
    assert cycles == [["moa.a", "moa.b", "moa.a"]]


def test_private_names_are_caught_in_both_spellings(toy_package):
    mods = toy_package(
        {
            "a.py": "_SAFE = 0.9\n__dunder__ = 1\nPUBLIC = 1\n",
            "b.py": "from .a import _SAFE, __dunder__, PUBLIC\n",
            "c.py": "from . import a\nx = a._SAFE + a.PUBLIC\n",
            "s/__init__.py": "",
            "s/_impl.py": "",
            "s/user.py": "from . import _impl\n",
            "d.py": "from .s import _impl\n",
        }
    )
    found = private_crossings(mods, import_uses(mods))
    assert found == [
        "moa.b:1 uses moa.a._SAFE",
        "moa.c:2 uses moa.a._SAFE",
        "moa.d:1 uses private module moa.s._impl from outside moa.s",
    ]
