#!/usr/bin/env bash
# Main job: set up the environment, then run the whole DVC pipeline (`dvc repro`) on params.yaml.
# Extra arguments go to `dvc repro` (e.g. a stage name, or --force).
#
# Every stage is a Prefect flow. Without a Prefect server each stage would start its own temporary
# one (10-20 s each); so unless PREFECT_API_URL is set (your own server) or GANPIPE_PREFECT_SERVER=0,
# one server is started on 127.0.0.1 for the whole run (state in .prefect/, log in
# .prefect/repro-server.log) and stopped at the end. If it does not come up, the stages fall back
# to temporary servers.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/env.sh"
cd "$ROOT"
if [ -z "${PREFECT_API_URL:-}" ] && [ "${GANPIPE_PREFECT_SERVER:-1}" != 0 ]; then
  source scripts/prefect_server.sh
  start_prefect_server .prefect/repro-server.log || echo "[repro] no shared Prefect server: each stage starts its own"
fi
dvc repro "$@"
