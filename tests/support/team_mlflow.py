"""A team's MLflow for tests: a private PostgreSQL cluster and a real ``mlflow server`` on 127.0.0.1.

* :func:`postgres_cluster` starts PostgreSQL (``initdb`` + ``pg_ctl`` as the ``postgres`` user when
  run as root) on a free port, listening on 127.0.0.1 only, in a temporary folder; it yields the
  database URI and stops the cluster afterwards. Without PostgreSQL's programs it yields a sqlite
  URI and prints why (the only fallback).
* :class:`TrackingServer` runs ``python -m mlflow server --backend-store-uri DB
  --artifacts-destination DIR`` and can be stopped and started again on the same port (an outage).
* :class:`OutageSwitch` takes the server's address away and gives it back at once (tests that must
  not wait a minute for a restart).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.prefect_server import free_port, stop, wait_until


def _pg_bin() -> Path | None:
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))[-1:]), None)
    return Path(initdb).resolve().parent if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """A private PostgreSQL cluster's database URI (``postgresql+psycopg2://postgres@127.0.0.1:PORT/mlflow``)."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        folder = Path(tempfile.mkdtemp(prefix="ganpipe-sqlite-"))
        print("PostgreSQL not found (no initdb on PATH or in /usr/lib/postgresql): the tracking server uses sqlite")
        yield f"sqlite:///{folder / 'mlflow.db'}"
        shutil.rmtree(folder, ignore_errors=True)
        return
    top = Path(tempfile.mkdtemp(prefix="ganpipe-pg-"))  # under /tmp: the postgres user can reach it
    data = top / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    log = top / "postgres.log"
    pg_ctl = _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data)])
    try:
        subprocess.run(_as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                     "--no-sync", "-E", "UTF8"]), check=True, capture_output=True, timeout=300)
        subprocess.run([*pg_ctl, "-l", str(log), "-w", "-t", "120", "-o",
                        f"-p {port} -k {top} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=180)
        subprocess.run(_as_postgres([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                                     "mlflow"]), check=True, capture_output=True, timeout=120)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(top, ignore_errors=True)


class TrackingServer:
    """``mlflow server`` on 127.0.0.1 (one worker), restartable on its port."""

    def __init__(self, backend_uri: str, workdir: Path):
        self.backend_uri, self.workdir = backend_uri, workdir
        self.artifacts = workdir / "artifacts"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "mlflow-server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> TrackingServer:
        self.artifacts.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
        env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
             "--artifacts-destination", str(self.artifacts), "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1"], cwd=self.workdir, env=env, stdout=self.log.open("a"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_until(self.healthy, "mlflow server", [self.log], [self.proc])
        return self

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        assert not self.healthy()

    def restart(self) -> float:
        """Start again on the same port; returns the seconds it took."""
        started = time.monotonic()
        self.start()
        return time.monotonic() - started


class OutageSwitch:
    """A TCP relay on its own port in front of the tracking server, to take its address away and give
    it back in an instant (a real server restart takes a minute on a loaded CI machine): ``down()``
    closes the listening socket and every open connection (clients get "connection refused", as from
    a stopped server); ``hang()`` accepts connections and never answers (a server that is stuck)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.hanging = False

    def up(self, hanging: bool = False) -> OutageSwitch:
        self.down()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener, self.hanging = listener, hanging
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            _close(listener)  # shutdown() first: a bare close() leaves a blocked accept() listening
        for conn in conns:
            _close(conn)

    def hang(self) -> None:
        """Accept, never answer (``up()`` ends it)."""
        self.down()
        self.up(hanging=True)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            with self._lock:
                self._conns.append(client)
            if self.hanging:
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._conns.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _close(dst)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
