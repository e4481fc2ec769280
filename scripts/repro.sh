#!/usr/bin/env bash
# Main job: set up the environment, then run the whole DVC pipeline (`dvc repro`) on params.yaml.
# Extra arguments go to `dvc repro` (e.g. a stage name, or --force).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
dvc repro "$@"
