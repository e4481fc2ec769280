"""The MLflow store as the rest of the project reaches it: where it is ($MLFLOW_TRACKING_URI, else the
tracking URI of the project with its relative sqlite database and artifact folder made absolute;
where a new experiment keeps its artifacts) and what comes out of it (the generator file of a
registered model, ``models:/NAME@alias`` / ``models:/NAME/3``, checked against its registered hash),
and the local lock file and which failures are worth retrying. No registration, no promotion
(ganpipe/model_registry.py, ganpipe/promotion.py; turns at a shared registry:
ganpipe/registry_turns.py), no model packaging: training (fine-tuning from a registered model) and
synthesis use only this.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ganpipe.config import TrackingParams
from ganpipe.digest import file_sha256  # also imported from here by the registry and the importers

GENERATOR_ARTIFACT = "artifacts/generator.pt"  # path of the generator file inside the model


class StoreError(RuntimeError):
    """A registered model that cannot be fetched (no generator in it, a hash mismatch)."""


def store_uri(tp: TrackingParams) -> str:
    """The tracking store in use: ``$MLFLOW_TRACKING_URI`` when set (a team's server: the address,
    and any credentials, stay out of params.yaml and dvc.lock), else ``tracking.tracking_uri``.
    Credentials MLflow reads itself (``MLFLOW_TRACKING_USERNAME/PASSWORD/TOKEN``) need nothing here."""
    return os.environ.get("MLFLOW_TRACKING_URI") or tp.tracking_uri


def is_server(uri: str) -> bool:
    """Whether ``uri`` is a tracking server (``http(s)://``): its artifact store, not a local folder."""
    return uri.split("://", 1)[0].lower() in ("http", "https")


def has_scheme(location: str) -> bool:
    """Whether an artifact location is a URI (``s3://b/p``, ``mlflow-artifacts:/p``), not a path."""
    head, sep, _ = location.partition(":")
    return bool(sep) and len(head) > 1 and head.replace("-", "").replace("+", "").isalnum()


def project_tracking(tp: TrackingParams, project_dir: str | Path = ".") -> TrackingParams:
    """``tp`` with the store in use (:func:`store_uri`), a relative sqlite database and artifact
    folder made absolute under ``project_dir`` (the process may run elsewhere, e.g. a scheduled
    flow run). Idempotent."""
    root = Path(project_dir).resolve()
    uri = store_uri(tp)
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(root / uri[len(prefix):])
    location = tp.artifact_location
    if not has_scheme(location) and not Path(location).is_absolute():
        location = str(root / location)
    return tp.model_copy(update={"tracking_uri": uri, "artifact_location": location})


def experiment_location(tp: TrackingParams) -> str | None:
    """Where a new experiment keeps its artifacts (``tp`` from :func:`project_tracking`): a
    configured URI as given; on a tracking server, its own artifact store (None) instead of a
    local folder no other clone can read; otherwise the project's folder (``file://``)."""
    if has_scheme(tp.artifact_location):
        return tp.artifact_location
    if is_server(tp.tracking_uri):
        return None
    location = Path(tp.artifact_location)
    location.mkdir(parents=True, exist_ok=True)
    return location.resolve().as_uri()


def point_mlflow(uri: str) -> None:
    """Make ``uri`` MLflow's tracking and registry store in this process. ``mlflow.set_tracking_uri``
    also exports $MLFLOW_TRACKING_URI, which ganpipe reads as the user's choice (:func:`store_uri`):
    the variables are left as they were. A URI with a password is not printed by MLflow."""
    import mlflow

    from ganpipe.redaction import redact

    if redact(uri) != uri:  # MLflow prints "View run ... at: <the URI>" to stdout when a run ends
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def download_generator(model_uri: str, dst_dir: str | Path | None = None, tracking_uri: str | None = None) -> Path:
    """The generator file inside a registered model (``models:/NAME@alias``, ``models:/NAME/3``),
    downloaded to ``dst_dir`` (a new temporary folder by default); checked against the version's
    ``generator_sha256`` tag when there is one."""
    import mlflow
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri or resolve_tracking_uri()
    if uri:  # the registry too: models:/ URIs resolve through the registry URI
        point_mlflow(uri)
    dst = Path(dst_dir) if dst_dir else Path(tempfile.mkdtemp(prefix="ganpipe-model-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst)))
    path = local / GENERATOR_ARTIFACT
    if not path.is_file():
        raise StoreError(f"{model_uri} holds no ganpipe generator ({GENERATOR_ARTIFACT} missing)")
    expected = None
    rest = model_uri[len("models:/"):] if model_uri.startswith("models:/") else ""
    if rest:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri) if uri else MlflowClient()
        try:
            if "@" in rest:
                name, alias = rest.split("@", 1)
                mv = client.get_model_version_by_alias(name, alias)
            elif "/" in rest:
                name, version = rest.split("/", 1)
                mv = client.get_model_version(name, version)
            else:
                mv = None
            expected = mv.tags.get("generator_sha256") if mv is not None else None
        except Exception:  # noqa: BLE001 - a logged model id (models:/m-...) has no version tags
            expected = None
    if expected and file_sha256(path) != expected:
        raise StoreError(f"{model_uri}: the downloaded generator does not match its registered hash")
    return path


def resolve_tracking_uri(explicit: str | None = None, params_path: str | Path = "params.yaml") -> str | None:
    """``explicit``, else ``$MLFLOW_TRACKING_URI``, else the project's ``tracking.tracking_uri`` (of
    ``params_path`` when it exists, made absolute), else None (MLflow's default)."""
    if explicit:
        return explicit
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    path = Path(params_path)
    if path.is_file():
        from ganpipe.config import load_params

        return project_tracking(load_params(path).tracking, path.resolve().parent).tracking_uri
    return None


# ------------------------------------------------------------------------------------------------
# taking turns: the registration lock, and failures worth retrying
# Not "connection refused": a server that is down stays down for longer than a retry waits
# (ganpipe.tracking_outage bounds that case and says so).
_TRANSIENT_MARKERS = ("database is locked", "unable to acquire lock", "lock is held", "lockerror",
                      "temporarily unavailable", "connection reset", "timed out")


class TransientError(RuntimeError):
    """A failure worth retrying (a lock held by another process, a busy database)."""


def is_transient(exc: BaseException) -> bool:
    """Whether retrying ``exc`` may succeed: lock timeouts, busy databases, network resets."""
    from filelock import Timeout

    if getattr(exc, "transient", None) is False:  # classified where it was raised
        return False
    if isinstance(exc, (TransientError, Timeout)):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def lock_path(tp: TrackingParams, project_dir: str | Path = ".") -> Path:
    """The registration lock: beside the sqlite database, else ``<project>/.mlflow/registry.lock``."""
    tp = project_tracking(tp, project_dir)
    if tp.tracking_uri.startswith("sqlite:///"):
        return Path(tp.tracking_uri[len("sqlite:///"):]).parent / "registry.lock"
    return Path(project_dir).resolve() / ".mlflow" / "registry.lock"


def file_lock(path: str | Path, timeout: float) -> Any:
    """An inter-process (and inter-thread) lock on ``path``; raises ``filelock.Timeout``."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)  # a new object (and descriptor) per use: threads exclude each other
