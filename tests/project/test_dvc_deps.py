"""DVC dependencies that cannot drift: every module of ganpipe/ and flows/ a stage's command imports
(transitively, module-level and function-level imports alike) is one of that stage's ``deps`` in dvc.yaml
(a dep folder covers the modules under it). Otherwise an edit to that module would not re-run the stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.imports import PACKAGES, closure, imported_names, module_file


def entry_modules(cmd: str) -> set[str]:
    """The modules a stage's ``python -m <module> [<subcommand>]`` command runs first. For the CLI, only
    the named subcommand's function (plus the CLI module's top-level imports) counts."""
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"stage command not of the form `python -m module ...`: {cmd}"
    module = words[2]
    path = module_file(module)
    assert path is not None, f"{module} is not a module of {PACKAGES}"
    tree = ast.parse(path.read_text(), filename=str(path))
    if module != "ganpipe.cli":
        return {module}
    command = words[3]
    top = {n for stmt in tree.body if isinstance(stmt, (ast.Import, ast.ImportFrom))
           for n in imported_names(stmt, module, False)}
    funcs = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == command.replace("-", "_")]
    assert funcs, f"ganpipe/cli.py has no command {command!r}"
    return {module} | top | imported_names(funcs[0], module, False)


def _cli_closure(roots: set[str]) -> set[Path]:
    """closure() without walking the rest of ganpipe/cli.py (its other commands import other modules)."""
    cli = module_file("ganpipe.cli")
    files = closure(roots - {"ganpipe.cli"})
    return files | {cli} if "ganpipe.cli" in roots else files


def stages() -> dict[str, dict]:
    return yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]


def missing_deps(stage: dict) -> list[str]:
    deps = [REPO_ROOT / str(d) for d in stage.get("deps", []) if "${" not in str(d)]
    missing = []
    for path in sorted(_cli_closure(entry_modules(stage["cmd"]))):
        if not any(path == d or d in path.parents for d in deps):
            missing.append(path.relative_to(REPO_ROOT).as_posix())
    return missing


STAGES = stages()


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_every_module_its_command_imports(name: str):
    missing = missing_deps(STAGES[name])
    assert not missing, f"dvc.yaml stage {name!r} lacks deps for the modules its command imports: {missing}"


def test_the_walk_sees_function_level_and_relative_imports():
    files = {p.relative_to(REPO_ROOT).as_posix() for p in closure({"flows.train"})}
    assert {"flows/train.py", "flows/__init__.py", "ganpipe/__init__.py"} <= files
    assert "ganpipe/training/trainer.py" in files and "ganpipe/models/hifigan.py" in files
    # a dep list that lacks a module is reported by name
    assert "flows/train.py" in missing_deps({"cmd": "python -m flows.train", "deps": ["ganpipe"]})
