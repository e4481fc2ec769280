"""The import graph of ganpipe/ and flows/, read from the source (module-level and function-level imports
alike, relative imports resolved): used by tests/project/test_dvc_deps.py and tests/project/test_layers.py."""

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


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _walk(node: ast.AST, type_checking: bool):
    """``ast.walk`` that enters ``if TYPE_CHECKING:`` bodies only when ``type_checking``."""
    todo = [node]
    while todo:
        sub = todo.pop()
        yield sub
        if _is_type_checking(sub) and not type_checking:
            todo.extend(sub.orelse)
            continue
        todo.extend(ast.iter_child_nodes(sub))


def imported_names(node: ast.AST, current: str, is_package: bool, type_checking: bool = False) -> set[str]:
    """Names of the modules imported anywhere under ``node`` (``from a import b`` yields a and a.b);
    imports under ``if TYPE_CHECKING:`` count only when ``type_checking``."""
    names: set[str] = set()
    for sub in _walk(node, type_checking):
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


def lazy_attribute_module(name: str) -> str | None:
    """``pkg.attr`` where ``pkg/__init__.py`` resolves ``attr`` lazily (PEP 562 ``__getattr__``, the
    names declared under ``if TYPE_CHECKING: from .mod import attr``) -> ``pkg.mod``; else None."""
    package, _, attr = name.rpartition(".")
    init = module_file(package) if package else None
    if init is None or init.name != "__init__.py":
        return None
    for node in ast.walk(ast.parse(init.read_text())):
        if _is_type_checking(node):
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and any(a.name == attr for a in sub.names):
                    module = "." * sub.level + (sub.module or "")
                    return package + module if sub.level else module
    return None


def closure(roots: set[str]) -> set[Path]:
    """The files of ganpipe/ and flows/ that importing ``roots`` may execute, transitively (a name
    of a lazily resolving package counts as an import of the module that provides it)."""
    seen: set[Path] = set()
    todo = [n for root in roots for n in with_parents(root)]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None:
            provider = lazy_attribute_module(name)
            if provider is not None:
                todo.extend(with_parents(provider))
            continue
        if path in seen:
            continue
        seen.add(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in imported_names(tree, module_name(path), path.name == "__init__.py"):
            todo.extend(with_parents(name))
    return seen
