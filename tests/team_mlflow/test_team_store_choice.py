"""Which store a step uses, and what is kept secret (no server needed): $MLFLOW_TRACKING_URI wins over
params.yaml, a server keeps its own artifacts, a password never appears in what ganpipe writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganpipe.config import ConfigError, TrackingParams, load_params
from ganpipe.mlflow_store import experiment_location, is_transient, project_tracking, resolve_tracking_uri
from ganpipe.redaction import redact
from ganpipe.registry_turns import is_shared
from ganpipe.tracking_outage import TrackingServerUnavailable, bounded_http, http_settings
from tests.conftest import write_params


def test_the_environment_wins_over_params(tmp_path, monkeypatch):
    tp = TrackingParams()
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert project_tracking(tp, tmp_path).tracking_uri == f"sqlite:///{tmp_path.resolve() / '.mlflow/mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    local = project_tracking(tp, tmp_path)
    assert local.tracking_uri == "http://127.0.0.1:5999"
    assert project_tracking(local, tmp_path) == local  # idempotent
    write_params(tmp_path / "params.yaml", {})
    assert resolve_tracking_uri(params_path=tmp_path / "params.yaml") == "http://127.0.0.1:5999"


def test_a_server_keeps_its_own_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example:443")
    assert experiment_location(project_tracking(TrackingParams(), tmp_path)) is None
    for uri in ("s3://bucket/ganpipe", "mlflow-artifacts:/team"):
        assert experiment_location(project_tracking(TrackingParams(artifact_location=uri), tmp_path)) == uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    local = experiment_location(project_tracking(TrackingParams(), tmp_path))
    assert local == (tmp_path.resolve() / ".mlflow/artifacts").as_uri()
    assert is_shared("http://h:5000") and is_shared("postgresql+psycopg2://u@h/db")
    assert not is_shared(f"sqlite:///{tmp_path}/m.db") and not is_shared(str(tmp_path))


def test_params_refuse_a_password_and_unknown_artifact_stores(tmp_path):
    for tracking, key in (({"tracking_uri": "postgresql://team:hunter22@db/mlflow"}, "tracking.tracking_uri"),
                          ({"artifact_location": "ftp://files/x"}, "tracking.artifact_location"),
                          ({"server_timeout_seconds": 0}, "tracking.server_timeout_seconds")):
        write_params(tmp_path / "params.yaml", {"tracking": tracking})
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
            load_params(tmp_path / "params.yaml")
        assert "hunter22" not in str(err.value)


def test_redaction_of_uris_and_secret_variables(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "tok-9f8e7d")
    text = ("failed: http://alice:pa55@10.0.0.1:5000/api and postgresql+psycopg2://bob:x%40y@db:5432/m, "
            "header Basic tok-9f8e7d")
    out = redact(text)
    assert "pa55" not in out and "x%40y" not in out and "tok-9f8e7d" not in out
    assert "http://alice:***@10.0.0.1:5000/api" in out and "bob:***@db" in out
    assert redact("http://10.0.0.1:5000") == "http://10.0.0.1:5000"


def test_an_outage_is_not_retried_and_http_is_bounded(monkeypatch):
    assert not is_transient(TrackingServerUnavailable("down"))
    assert not is_transient(RuntimeError("Connection refused"))
    assert is_transient(RuntimeError("database is locked"))
    settings = http_settings(120)
    assert settings["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2" and settings["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "40"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")  # the user's choice is kept
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    import os

    with bounded_http(9):
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5" and os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "3"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_the_register_stage_does_not_depend_on_the_address():
    """dvc.lock records a stage's params: the tracking address must not be one of them."""
    import yaml

    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())
    for name, stage in spec["stages"].items():
        for entry in stage.get("params") or []:
            keys = entry if isinstance(entry, dict) else [entry]
            assert not any(str(k).startswith("tracking") for k in keys), (name, entry)
