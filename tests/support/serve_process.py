"""A real `ganpipe serve` process on 127.0.0.1 for a test: started, polled until /readyz answers, stopped."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.prefect_server import free_port, stop, wait_until


@contextmanager
def serve_process(cwd: Path, env: dict, args: list[str], log: Path, what: str = "ganpipe serve") -> Iterator[str]:
    """Yields the server's base URL; ``args`` follow ``ganpipe serve`` (the port is chosen here)."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ganpipe.cli", "serve", *args, "--port", str(port)], cwd=cwd,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, what, [log], [proc])
        yield base
    finally:
        stop(proc)
