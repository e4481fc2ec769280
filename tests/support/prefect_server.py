"""A real ``prefect server start`` on 127.0.0.1 for tests (schedules and deployments need one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Stop a process group a test started (SIGTERM, then SIGKILL)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until(check: Callable[[], Any], what: str, logs: list[Path], procs: list[subprocess.Popen],
               allowance: float = 240.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the logs when a process exits."""
    deadline = time.monotonic() + allowance  # start-up allowance on a loaded machine, not a check
    while True:
        for proc, log in zip(procs, logs):
            assert proc.poll() is None, f"{what}: a process exited:\n{log.read_text()[-3000:]}"
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: gave up waiting\n" + "\n".join(
            log.read_text()[-2000:] for log in logs)
        time.sleep(0.5)


def start_server(workdir: Path, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    """Start the server (its own PREFECT_HOME under ``workdir``); sets PREFECT_* in ``env``.
    Returns (process, API URL, log file); call :func:`wait_healthy` before using it."""
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env.update(PREFECT_HOME=str(workdir / "prefect-home"), PREFECT_API_URL=api, PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    log = workdir / "prefect-server.log"
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=workdir, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    return proc, api, log


def wait_healthy(proc: subprocess.Popen, api: str, log: Path) -> None:
    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    wait_until(healthy, "prefect server", [log], [proc])
