"""Imports point one way: no module imports from a package to its right in docs/architecture.md.

Every import counts, including the ones inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "graphwiz_trader"
DOC = ROOT / "docs" / "architecture.md"


def package_order() -> list[str]:
    text = DOC.read_text()
    block = text.split("<!-- import-order")[1].split("<!-- /import-order -->")[0]
    return re.findall(r"^\d+\.\s+`([a-z_]+)`", block, flags=re.M)


def documented_exceptions() -> set[tuple[str, str]]:
    """(module path under src/graphwiz_trader, package) pairs the doc allows, imported on call only."""
    text = DOC.read_text()
    block = text.split("<!-- import-exceptions")[1].split("<!-- /import-exceptions -->")[0]
    return set(re.findall(r"^- `([a-z_/]+\.py)` -> `([a-z_]+)`", block, flags=re.M))


def module_level_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("graphwiz_trader."):
            out.add(node.module.split(".")[1])
    return out


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(first component under graphwiz_trader, line) for every import of a graphwiz_trader module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "graphwiz_trader":
                names = [f"graphwiz_trader.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "graphwiz_trader" and len(parts) > 1:
                out.add((parts[1], node.lineno))
    return out


def own_package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def test_the_documented_order_names_every_package_and_top_level_module():
    order = package_order()
    present = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    present |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert len(order) == len(set(order)), "a package is listed twice"
    assert present <= set(order), f"not in docs/architecture.md's order: {sorted(present - set(order))}"


def test_no_module_imports_from_a_package_to_its_right():
    rank = {name: i for i, name in enumerate(package_order())}
    allowed = documented_exceptions()
    violations = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == SRC:
            continue
        mine = own_package(path)
        rel = path.relative_to(SRC).as_posix()
        for target, line in sorted(imported_packages(path)):
            if (rel, target) in allowed and target not in module_level_packages(path):
                continue
            if target in rank and rank[target] > rank[mine]:
                violations.append(f"{path.relative_to(ROOT)}:{line} ({mine}) imports {target}")
    assert not violations, "imports against the one-way order:\n" + "\n".join(violations)


def test_no_command_module_imports_another_command_module():
    offenders = []
    for path in sorted(SRC.rglob("commands*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            mod = node.module if isinstance(node, ast.ImportFrom) else None
            if mod and mod.startswith("graphwiz_trader.") and mod.rsplit(".", 1)[-1].startswith("commands") \
                    and Path(*mod.split(".")[1:]).with_suffix(".py") != path.relative_to(SRC):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {mod}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("bad, target", [("models", "research"), ("config", "data")])
def test_the_checker_catches_a_planted_violation(tmp_path, bad, target):
    planted = tmp_path / "x.py"
    planted.write_text(f"def f():\n    from graphwiz_trader.{target}.anything import thing\n")
    rank = {name: i for i, name in enumerate(package_order())}
    found = {t for t, _ in imported_packages(planted)}
    assert found == {target} and rank[target] > rank[bad]


def test_the_product_never_imports_the_testkit():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in sorted(SRC.rglob("*.py"))
                 if own_package(path) != "testkit"
                 for target, line in imported_packages(path) if target == "testkit"]
    assert not offenders, "the product imports testkit: " + ", ".join(offenders)


def test_documented_exceptions_are_few_and_really_lazy():
    allowed = documented_exceptions()
    assert 0 < len(allowed) <= 3
    for rel, target in allowed:
        path = SRC / rel
        assert path.exists(), f"{rel} in the exceptions does not exist"
        assert target not in module_level_packages(path), f"{rel} imports {target} at module level"
        assert target in {t for t, _ in imported_packages(path)}, f"{rel} no longer needs its exception"
