#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the wheels of benchmarks/gpu/carried.txt, for the GPU machine's
# Python 3.12 on x86-64: binary wheels downloaded with the device README's pip line; packages
# marked "# build" (no py3.12 wheel on the index) built here with Python 3.12 ($PY312, default:
# pyenv's 3.12.1). Idempotent: a wheel already in .whl/ is kept. Prints the total size (< 50 MiB).
#   bash benchmarks/gpu/make_wheels.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY312="${PY312:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/3.12.1/bin/python3.12}"
PIP_HOST="${PIP_HOST:-python3}"   # any pip can download; building needs Python 3.12
mkdir -p .whl
have() {  # a wheel of NAME==VERSION already in .whl/ (a wheel's file name spells NAME with _ for -)
  local norm; norm="$(echo "$1" | tr 'A-Z-' 'a-z_')"
  ls .whl 2>/dev/null | tr 'A-Z' 'a-z' | grep -q "^${norm}-${2}-"
}
grep -v '^\s*#' benchmarks/gpu/carried.txt | sed '/^\s*$/d' | while read -r spec rest; do
  name="${spec%%==*}"; version="${spec##*==}"
  if have "$name" "$version"; then continue; fi
  if [[ "$rest" == *build* ]]; then
    echo "[wheels] building $spec with $("$PY312" --version)"
    "$PY312" -m pip wheel -q --disable-pip-version-check --no-deps -w .whl "$spec"
  else
    echo "[wheels] downloading $spec"
    "$PIP_HOST" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$spec"
  fi
done
# one version of each package: two stop the whole install there
dups="$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-' 'a-z_' | sort | uniq -d)"
[ -z "$dups" ] || { echo "[wheels] more than one wheel of: $dups (remove the stale one from .whl/)" >&2; exit 1; }
echo "[wheels] $(ls .whl/*.whl | wc -l) wheels, $(du -cb .whl/*.whl | tail -1 | cut -f1) bytes in .whl/"
