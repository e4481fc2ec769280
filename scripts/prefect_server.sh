#!/usr/bin/env bash
# start_prefect_server LOG: start `prefect server start` on a free 127.0.0.1 port in its own process
# group, wait until it answers (up to 180 s), export PREFECT_API_URL and stop it when the calling
# shell exits. Returns non-zero (and stops it) if it does not come up. Source this file first.
start_prefect_server() {
  local log="$1" port pid
  mkdir -p "$(dirname "$log")"
  port="$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  PREFECT_UI_ENABLED=false setsid python -m prefect server start --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
  pid=$!
  GANPIPE_PREFECT_SERVER_PID=$pid
  trap 'kill -TERM -- -"$GANPIPE_PREFECT_SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 360); do
    if python - "$port" <<'PY' 2>/dev/null
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/health", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
PY
    then
      export PREFECT_API_URL="http://127.0.0.1:$port/api"
      echo "[prefect] server for this run: http://127.0.0.1:$port (log: $log)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -TERM -- -"$pid" 2>/dev/null || true
  return 1
}
