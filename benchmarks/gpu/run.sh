#!/usr/bin/env bash
# The GPU kit (issue 13), one command: installs the carried wheels of .whl/ the way the device
# README says (pip --no-index --no-deps --target), then runs benchmarks/gpu/kit.py with them on
# PYTHONPATH. Results: $OUT/kit.json + $OUT/kit.log (without $OUT: benchmarks/gpu/results/).
# Extra arguments go to kit.py (--mode, --budget, --only). See benchmarks/gpu/README.md.
#   PYTHON   the interpreter (default python3: the GPU machine's own, with torch 2.11)
#   KIT_SITE where the wheels are installed (default /tmp/site)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY="${PYTHON:-python3}"
SITE="${KIT_SITE:-/tmp/site}"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || { echo "[kit] installing the carried wheels (.whl/) failed" >&2; exit 1; }
  export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
  echo "[kit] $(ls .whl/*.whl | wc -l) carried wheels installed into $SITE"
else
  echo "[kit] no .whl/ here: running with the packages $PY already has"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg DO_NOT_TRACK=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
exec "$PY" benchmarks/gpu/kit.py "$@"
