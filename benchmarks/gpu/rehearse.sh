#!/usr/bin/env bash
# CPU rehearsal of the GPU kit: a Python 3.12 venv (.venv-gpu/, git-ignored) holding what the GPU
# machine's image holds (benchmarks/gpu/image-packages.txt: torch 2.11.0 + torchaudio 2.11.0, numpy,
# ...) and nothing of what the kit carries (benchmarks/gpu/carried.txt: removed again if a
# dependency brought it in), then benchmarks/gpu/run.sh with that Python: the carried wheels
# installed exactly as on the GPU machine, the kit in its no-CUDA mode (shrunk sizes).
#   bash benchmarks/gpu/rehearse.sh            # results: benchmarks/gpu/results/rehearsal/
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY312="${PY312:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/3.12.1/bin/python3.12}"
VENV=.venv-gpu
STAMP="$VENV/.image-packages.sha256"
WANT="$(cat benchmarks/gpu/image-packages.txt benchmarks/gpu/carried.txt | sha256sum | cut -d' ' -f1)"
[ -x "$VENV/bin/python" ] || "$PY312" -m venv "$VENV"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "[rehearse] installing the GPU image's packages into $VENV (first time: several minutes, ~5 GB)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r benchmarks/gpu/image-packages.txt
  carried="$(grep -v '^\s*#' benchmarks/gpu/carried.txt | sed '/^\s*$/d' | awk '{print $1}' | sed 's/==.*//')"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip uninstall -y -q $carried 2>/dev/null || true
  echo "$WANT" > "$STAMP"
fi
bash benchmarks/gpu/make_wheels.sh
SITE="$(mktemp -d /tmp/ganpipe-kit-site.XXXXXX)"
trap 'rm -rf "$SITE"' EXIT
export OUT="${OUT:-$ROOT/benchmarks/gpu/results/rehearsal}"
mkdir -p "$OUT"
start=$(date +%s)
PYTHON="$VENV/bin/python" KIT_SITE="$SITE" bash benchmarks/gpu/run.sh "$@"
rc=$?
echo "[rehearse] run.sh exited $rc after $(( $(date +%s) - start )) s (wall); results in $OUT"
exit $rc
