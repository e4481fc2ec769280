#!/usr/bin/env bash
# Test command: set up the environment, install the test-only reference oracles
# and the linter (requirements-test.lock, a stamp of their own), then run ruff and the test suite. Extra arguments go to pytest.
#   ./scripts/test.sh            the full suite (what CI runs)
#   ./scripts/test.sh --quick    the unit tier: -m "not slow and not network" (no server, no subprocess
#                                pipeline, no training beyond a few steps)
set -euo pipefail
QUICK_MARKERS="not slow and not network"
MARKERS=()
if [ "${1:-}" = "--quick" ]; then
  shift
  MARKERS=(-m "$QUICK_MARKERS")
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
TEST_STAMP=".venv/.ganpipe-test-lock.sha256"
TEST_WANT="$(sha256sum < requirements-test.lock | cut -d' ' -f1)"
if [ "$(cat "$TEST_STAMP" 2>/dev/null)" != "$TEST_WANT" ]; then
  echo "[test] installing the reference oracles from requirements-test.lock (tests only)"
  python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -r requirements-test.lock
  echo "$TEST_WANT" > "$TEST_STAMP"
fi
echo "[test] ruff check (rules: pyproject.toml [tool.ruff])"
python -m ruff check --no-cache --quiet .
python -m pytest ${MARKERS[@]+"${MARKERS[@]}"} "$@"
