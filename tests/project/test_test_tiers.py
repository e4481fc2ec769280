"""The test suite's own house rules: the quick tier, ../shared under CI, fixtures only in conftest.py."""

from __future__ import annotations

import ast
import re

import pytest

from tests.conftest import NEEDS_MARK, REPO_ROOT, missing_shared

TESTS = REPO_ROOT / "tests"


def test_missing_shared_skips_locally_and_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not found"):
        missing_shared("sample not found")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        missing_shared("sample not found")


def test_quick_tier_is_the_documented_marker_expression():
    script = (REPO_ROOT / "scripts" / "test.sh").read_text()
    expr = re.search(r'^QUICK_MARKERS="([^"]+)"', script, re.M)
    assert expr and "--quick" in script, "scripts/test.sh must define QUICK_MARKERS and a --quick option"
    assert expr.group(1) == "not slow and not network"
    readme = (REPO_ROOT / "README.md").read_text()
    assert "./scripts/test.sh --quick" in readme and f'-m "{expr.group(1)}"' in readme
    markers = (REPO_ROOT / "pyproject.toml").read_text()
    assert all(f'"{m}:' in markers for m in set(NEEDS_MARK.values()) | {"slow", "network"})


def _imports(path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
    return out


def test_test_modules_do_not_import_each_other():
    """Shared fixtures live in conftest.py, shared helpers in tests/support/: a test module imported by
    another would run its tests' module-level code twice and hide where a fixture comes from."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for module in _imports(path):
            name = module.removeprefix("tests.")
            if name.startswith("test_"):
                offenders.append(f"{path.name} imports {module}")
    assert not offenders, offenders


def test_fixtures_are_defined_in_conftest_or_their_own_test_module():
    """A fixture in a helper module (tests/support/) would have to be imported by name into
    each test module that uses it; shared fixtures belong in conftest.py."""
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        if path.name == "conftest.py" or path.name.startswith("test_"):
            continue
        if re.search(r"^@pytest\.fixture", path.read_text(), re.M):
            offenders.append(path.name)
    assert not offenders, f"fixtures outside conftest.py: {offenders}"


def test_test_modules_live_in_a_layer_folder_and_say_what_they_guard():
    """Tests are grouped by layer (tests/<layer>/test_*.py); each module opens with a docstring whose
    first line says what behaviour it guards, not where the request for it came from."""
    loose = sorted(p.name for p in TESTS.glob("test_*.py"))
    assert not loose, f"test modules outside a layer folder: {loose}"
    offenders = []
    for path in sorted(TESTS.glob("*/test_*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        first = (doc or "").strip().splitlines()[0] if doc else ""
        if not first or re.search(r"\b(issue|item) \d", first, re.I):
            offenders.append(f"{path.relative_to(TESTS)}: {first!r}")
    assert not offenders, offenders
