#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) from the pinned requirements.lock.
# Idempotent: a stamp records the lock's hash, so an up-to-date environment costs ~0 s.
# Usage: source scripts/env.sh   (or: bash scripts/env.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" - <<'PYCHK'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"ganpipe needs Python 3.11 (found {sys.version.split()[0]}); set PYTHON=/path/to/python3.11")
PYCHK
STAMP=".venv/.ganpipe-lock.sha256"
WANT="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  echo "[env] creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[env] installing pinned dependencies from requirements.lock (first time: several minutes)"
  # setuptools < 81: pysptk and pyworld still import pkg_resources
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip<27" "setuptools>=68,<81" wheel
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$WANT" > "$STAMP"
fi
# Project-local tool state and telemetry off (see prefect.toml for Prefect's own settings).
export DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
export PATH="$ROOT/.venv/bin:$PATH"
