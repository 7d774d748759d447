"""The package's layers (docs/EXTENDING.md): which layer may import which, checked on every import in the source.

Every ``import`` and ``from … import`` of every module is read with ``ast``, those inside functions too (a
function-level import is how a circle hides). A module's layer is its first folder under ``conformance/``
(``format``, ``semantics``, ``judge``, ``diagnosis``, ``report``, ``generate``, ``fuzz``, ``adapters``); a
module directly in ``conformance/`` is a layer of its own. Rules: ``format`` and ``semantics`` import nothing from
``judge``, ``adapters``, ``report`` or ``diagnosis``; no two layers import each other, directly or round a circle;
and no module imports an old path kept only for other code (a "moved to" alias). A failure names module and line.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "conformance"
LOWER = ("format", "semantics")
UPPER = ("judge", "adapters", "report", "diagnosis")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path) -> bool:
    where = root.parent.joinpath(*name.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


def imports(path: Path, root: Path) -> list[tuple[str, int]]:
    """(imported module of the package, line) for every import statement in ``path``, at any depth."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == root.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}", root)]
            found += [(name, node.lineno) for name in subs or [target]]
    return found


def layer(module: str) -> str:
    """``conformance.judge.suite`` -> ``judge``; ``conformance.cli`` -> ``cli``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def moved_aliases(root: Path) -> set[str]:
    """Modules kept at an old path only: their docstring starts with "Moved"."""
    return {_module_name(p, root) for p in root.rglob("*.py")
            if (ast.get_docstring(ast.parse(p.read_text())) or "").startswith("Moved")}


def problems(root: Path) -> list[str]:
    """Every break of the layer rules in the package at ``root``, each naming module and line."""
    aliases = moved_aliases(root)
    edges: dict[tuple[str, str], str] = {}
    found = []
    for path in sorted(root.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        module = _module_name(path, root)
        where = path.relative_to(root.parent)
        for target, line in imports(path, root):
            if target in aliases and module not in aliases:
                found.append(f"{where}:{line}: {module} imports {target}, an old path kept for other code only "
                             "(import the module it moved to)")
            if module in aliases:
                continue
            a, b = layer(module), layer(target)
            if a in LOWER and b in UPPER:
                found.append(f"{where}:{line}: {module} ({a}) imports {target} ({b}): "
                             f"{' and '.join(LOWER)} import nothing from {', '.join(UPPER)}")
            if a != b and target != root.name and module != root.name:
                edges.setdefault((a, b), f"{where}:{line}")
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    for cycle in _cycles(graph):
        steps = [f"{x} -> {y} ({edges[(x, y)]})" for x, y in zip(cycle, cycle[1:])]
        found.append("import circle between layers: " + "; ".join(steps))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per set of layers (each written from its smallest name back to it)."""
    found, seen = [], set()

    def visit(node, stack):
        for nxt in sorted(graph.get(node, ())):
            if nxt in stack:
                cycle = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    found.append(cycle)
            elif len(stack) < len(graph) + 1:
                visit(nxt, stack + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    return found


def test_the_package_keeps_its_layers():
    assert not problems(PACKAGE), "\n".join(problems(PACKAGE))


def test_the_graph_sees_function_level_imports_and_real_edges():
    registry = PACKAGE / "judge" / "registry.py"
    seen = {name for name, _ in imports(registry, PACKAGE)}
    assert "conformance.judge.subprocess_impl" in seen and "conformance.judge.isolation" in seen  # one is in a function
    assert "conformance.semantics.families.lstm" in {n for n, _ in imports(PACKAGE / "semantics" / "families"
                                                                               / "__init__.py", PACKAGE)}


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "conformance"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.mark.parametrize("files, wanted", [
    ({"format/__init__.py": "", "judge/__init__.py": "", "judge/suite.py": "",
      "format/fixtures.py": "def load():\n    from ..judge import suite\n"},
     "conformance/format/fixtures.py:2: conformance.format.fixtures (format) imports conformance.judge.suite (judge)"),
    ({"report/__init__.py": "from ..judge import verdict\n", "judge/__init__.py": "", "judge/verdict.py": "",
      "judge/session.py": "def f():\n    import conformance.report\n"},
     "import circle between layers: judge -> report (conformance/judge/session.py:2); "
     "report -> judge (conformance/report/__init__.py:1)"),
    ({"judge/__init__.py": "", "judge/suite.py": "", "suite.py": '"""Moved to conformance.judge.suite."""\n',
      "cli.py": "from .suite import x\n"},
     "conformance/cli.py:1: conformance.cli imports conformance.suite, an old path kept for other code only"),
])
def test_a_break_of_the_rules_is_named_with_module_and_line(tmp_path, files, wanted):
    found = problems(_package(tmp_path, files))
    assert any(p.startswith(wanted) for p in found), found


def test_a_package_that_keeps_its_layers_passes(tmp_path):
    root = _package(tmp_path, {"format/__init__.py": "", "format/fixtures.py": "",
                               "judge/__init__.py": "", "judge/suite.py": "from ..format import fixtures\n",
                               "suite.py": '"""Moved to conformance.judge.suite."""\nimport conformance.judge.suite\n'})
    assert problems(root) == []
