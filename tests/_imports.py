"""The import graph of ganpipe/ and flows/, read from the source (module-level and function-level imports
alike, relative imports resolved): used by tests/test_dvc_deps.py and tests/test_layers.py."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGES = ("ganpipe", "flows")


def module_file(name: str) -> Path | None:
    """ganpipe.x.y -> ganpipe/x/y.py or ganpipe/x/y/__init__.py (None outside our packages)."""
    if name.split(".")[0] not in PACKAGES:
        return None
    base = REPO_ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imported_names(node: ast.AST, current: str, is_package: bool) -> set[str]:
    """Names of the modules imported anywhere under ``node`` (``from a import b`` yields a and a.b)."""
    names: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            names.update(alias.name for alias in sub.names)
        elif isinstance(sub, ast.ImportFrom):
            if sub.level:
                package = current.split(".") if is_package else current.split(".")[:-1]
                package = package[: len(package) - (sub.level - 1)]
                base = ".".join(package + ([sub.module] if sub.module else []))
            else:
                base = sub.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in sub.names)
    return names


def with_parents(name: str) -> list[str]:
    """Importing a.b.c runs a/__init__.py and a/b/__init__.py first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def closure(roots: set[str]) -> set[Path]:
    """The files of ganpipe/ and flows/ that importing ``roots`` may execute, transitively."""
    seen: set[Path] = set()
    todo = [n for root in roots for n in with_parents(root)]
    while todo:
        path = module_file(todo.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in imported_names(tree, module_name(path), path.name == "__init__.py"):
            todo.extend(with_parents(name))
    return seen
