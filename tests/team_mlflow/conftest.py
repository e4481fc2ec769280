"""The team's tracking server for this folder's tests: one PostgreSQL-backed ``mlflow server`` per session."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def team_server():
    """(TrackingServer, backend URI): ``mlflow server`` on PostgreSQL with ``--artifacts-destination``."""
    from tests.support.team_mlflow import TrackingServer, postgres_cluster

    with postgres_cluster() as backend, tempfile.TemporaryDirectory(prefix="ganpipe-mlflow-server-") as tmp:
        server = TrackingServer(backend, Path(tmp)).start()
        try:
            yield server
        finally:
            server.stop()
