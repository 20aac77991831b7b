"""Docstrings name only things that exist: every :func:/:class:/:meth:/:mod:/:data:/:attr: reference resolves."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "graphwiz_trader"
REF = re.compile(r":(?:func|class|meth|mod|data|attr|exc):`~?([A-Za-z_][\w.]*)`")
EXTERNAL = ("qlib.", "lightgbm.", "pandas.", "numpy.", "ccxt.", "stable_baselines3.", "gymnasium.", "neo4j.",
            "pypfopt.", "sklearn.", "scipy.", "networkx.", "optuna.", "plotly.", "pydantic.", "sqlalchemy.",
            "alembic.", "torch.", "mlflow.", "hmmlearn.", "asyncio.", "logging.", "argparse.", "pathlib.",
            "hmac.", "threading.", "fastapi.", "starlette.", "uvicorn.", "prometheus_client.")


def _index() -> set[str]:
    """Every name the package defines, as ``name``, ``Class.attr``, ``module.name`` and ``package.module.name``."""
    import inspect

    names: set[str] = set()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        mod_name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        module = importlib.import_module(mod_name)
        short = mod_name.split(".")[-1]
        for key, obj in vars(module).items():
            names |= {key, f"{short}.{key}"}
            if inspect.isclass(obj) and getattr(obj, "__module__", "").startswith("graphwiz_trader"):
                for attr in dir(obj):
                    names |= {attr, f"{key}.{attr}"}
        for node in ast.walk(ast.parse(path.read_text())):  # instance attributes: ``self.x = ...`` in a class
            if isinstance(node, ast.ClassDef):
                for sub in ast.walk(node):
                    if (isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store)
                            and isinstance(sub.value, ast.Name) and sub.value.id == "self"):
                        names |= {sub.attr, f"{node.name}.{sub.attr}"}
    return names


def _resolve(dotted: str, module, index: set[str]) -> bool:
    """``dotted`` names an object: absolute (graphwiz_trader.x.y), or a name the package defines (Sphinx
    resolves short references in the context of the current module and class)."""
    parts = dotted.split(".")
    if parts[0] == "graphwiz_trader":
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
        return False
    return dotted in index


def test_every_docstring_reference_resolves():
    broken = []
    index = _index()
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        text = path.read_text()
        refs = {m.group(1) for m in REF.finditer(text)}
        refs = {r for r in refs if not r.startswith(EXTERNAL)}
        if not refs:
            continue
        module = importlib.import_module(name)
        broken += [f"{path.relative_to(SRC.parent)}: {r}" for r in sorted(refs) if not _resolve(r, module, index)]
    assert not broken, "docstrings name things that do not exist:\n" + "\n".join(broken)
