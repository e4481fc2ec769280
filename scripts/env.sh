#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) from the pinned requirements.lock;
# sourced, also put it on PATH (and tool telemetry off) in the calling shell.
# Idempotent: a stamp records the lock's hash, so an up-to-date environment costs ~0 s.
# Usage: source scripts/env.sh   (or: bash scripts/env.sh, which only creates/updates .venv)
# Extras: GANPIPE_EXTRAS=remote source scripts/env.sh also installs requirements-remote.lock (DVC's S3 and
# SSH remotes: dvc-s3, dvc-ssh).
#
# Sourced, it changes nothing in the caller's shell but PATH and the telemetry variables: no shell
# options, no working directory, no other variables (the work runs in a child bash with its own
# `set -euo pipefail`). On failure it returns non-zero, so a script with `set -e` stops there.

if (return 0 2>/dev/null); then
  # Sourced: run this file as a program for the work, then export into the caller.
  _ganpipe_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if bash "$_ganpipe_root/scripts/env.sh"; then
    # Project-local tool state and telemetry off (see prefect.toml for Prefect's own settings).
    export DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
    export PATH="$_ganpipe_root/.venv/bin:$PATH"
    unset _ganpipe_root
  else
    echo "[env] setting up $_ganpipe_root/.venv failed; PATH unchanged" >&2
    unset _ganpipe_root
    return 1
  fi
  return 0
fi

# Run as a program: create or update .venv.
set -o errexit -o nounset -o pipefail  # only when executed: the sourced branch above returned
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
LOCKS=(requirements.lock)
case ",${GANPIPE_EXTRAS:-}," in
  *,remote,*) LOCKS+=(requirements-remote.lock) ;;
  ,,) ;;
  *) echo "[env] GANPIPE_EXTRAS='${GANPIPE_EXTRAS}': the extras are: remote" >&2; exit 2 ;;
esac
WANT="$(cat "${LOCKS[@]}" pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -x .venv/bin/python ]; then
  echo "[env] creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[env] installing pinned dependencies from requirements.lock (first time: several minutes)"
  # setuptools < 81: pysptk and pyworld still import pkg_resources
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip<27" "setuptools>=68,<81" wheel
  for lock in "${LOCKS[@]}"; do
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$lock"
  done
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
  echo "$WANT" > "$STAMP"
fi
