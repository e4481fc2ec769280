"""MLflow logging of a training run (rank 0 only): params, losses, validation, samples, plots.

The tracking store is $MLFLOW_TRACKING_URI (a team's server), else the sqlite database and
artifact folder of params ``tracking`` (inside the project, git-ignored). A resumed training
continues the same MLflow run (its id is kept next to the checkpoints). With ``tracking.enabled:
false`` every call is a no-op.

A tracking outage never stops the training: every call is guarded. The first failure logs one
warning; metric values are kept (up to ``MAX_BUFFERED``) and sent when the server answers again
(asked every ``RETRY_AFTER_S``, each request bounded by ``TRAINING_HTTP_BUDGET_S``); samples and
plots of the outage are dropped. A server unreachable at the start: the training runs untracked.
Checkpoints do not depend on the server.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.atomic import write_json
from ganpipe.config import Params, TrackingParams
from ganpipe.plots import plot_mels
from ganpipe.redaction import redact
from ganpipe.tracking_outage import bounded_http

log = logging.getLogger("ganpipe.training.tracking")
RETRY_AFTER_S = 60.0  # during an outage the server is asked again this often (not at every step)
# One tracking request's limit, retries included (at most tracking.server_timeout_seconds): a
# refused connection costs ~2 s, a server that does not answer this long (10 s a try).
TRAINING_HTTP_BUDGET_S = 30.0
MAX_BUFFERED = 100_000  # metric values kept during an outage; the oldest are dropped beyond
_BATCH = 1000  # MLflow's limit of metrics per log_batch request

# The MLflow experiment tag that says what kind of work an experiment holds (values in MLflow's UI:
# genai_development, custom_model_development, ...). Model development: the UI's "Model training"
# view (runs table with metrics), not the GenAI view (traces). MLflow 3.17's UI also keeps a global
# GenAI / Model training switch (sidebar; ?workflowType=machine_learning in a URL): runs_url().
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def setup_mlflow(tp: TrackingParams, project_dir: str | Path = ".") -> str:
    """Point MLflow at the store in use ($MLFLOW_TRACKING_URI, else the project's); create the
    experiment (tagged as model development, as is an existing one without the tag); return its id.
    On a tracking server the experiment keeps its artifacts in the server's store
    (:func:`ganpipe.mlflow_store.experiment_location`)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ganpipe.mlflow_store import experiment_location, point_mlflow, project_tracking

    tp = project_tracking(tp, project_dir)
    if tp.tracking_uri.startswith("sqlite:///"):
        Path(tp.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    point_mlflow(tp.tracking_uri)
    exp = mlflow.get_experiment_by_name(tp.experiment)
    if exp is None:
        try:
            return mlflow.create_experiment(tp.experiment, artifact_location=experiment_location(tp),
                                            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException as exc:  # another clone created it a moment ago
            exp = mlflow.get_experiment_by_name(tp.experiment)
            if exp is None:
                raise exc from None
    if EXPERIMENT_KIND_TAG not in exp.tags:  # made before ganpipe tagged it (a kind set by hand is kept)
        mlflow.MlflowClient(tracking_uri=tp.tracking_uri).set_experiment_tag(
            exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def runs_url(experiment_id: str, ui: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI page of the experiment's runs table (``mlflow ui`` at ``ui``), in the Model
    training view whatever the browser's last GenAI / Model training choice was."""
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


class Tracker:
    def __init__(self, params: Params, enabled: bool, run_file: Path):
        self.params, self.enabled, self.run_file = params, enabled, run_file
        self.run_id: str | None = None
        self._client: Any = None
        self._uri = ""
        self._pending: deque[Any] = deque(maxlen=MAX_BUFFERED)
        self._down_until = 0.0  # monotonic time before which the server is not asked (an outage)
        self._warned = False
        self._lost = 0  # samples/plots dropped during outages
        self._http = ExitStack()

    def start(self, bundle: Any, recipe: Any, resumed_step: int, mel: Any = None) -> None:
        """``mel``: the features' MelConfig (default: params.yaml's; mel.preset from_model has none there)."""
        if not self.enabled:
            return
        from mlflow import MlflowClient

        from ganpipe.mlflow_store import project_tracking

        budget = min(self.params.tracking.server_timeout_seconds, TRAINING_HTTP_BUDGET_S)
        self._http.enter_context(bounded_http(budget))
        self._uri = project_tracking(self.params.tracking).tracking_uri
        try:
            self._start_run(bundle, recipe, resumed_step, mel)
        except Exception as exc:  # noqa: BLE001 - an unreachable store must not stop the training
            self._http.close()
            log.warning("MLflow tracking at %s failed (%s): this training runs untracked (checkpoints as usual)",
                        redact(self._uri), redact(exc))
            return
        self._client = MlflowClient(tracking_uri=self._uri)

    def _start_run(self, bundle: Any, recipe: Any, resumed_step: int, mel: Any) -> None:
        import mlflow

        exp_id = setup_mlflow(self.params.tracking)
        previous = json.loads(self.run_file.read_text())["run_id"] if self.run_file.is_file() and resumed_step else None
        run = mlflow.start_run(run_id=previous) if previous else mlflow.start_run(
            experiment_id=exp_id, run_name=f"train-{bundle.variant}")
        self.run_id = run.info.run_id
        write_json(self.run_file, {"run_id": self.run_id})
        if previous:
            mlflow.set_tag("resumed_at_step", str(resumed_step))
            return
        flat: dict[str, Any] = {}
        _flatten("", {"model": self.params.model.model_dump(), "train": self.params.train.model_dump(),
                      "mel": (mel or self.params.mel_config()).to_dict(), "dataset": self.params.dataset.name,
                      "recipe": recipe.as_dict()}, flat)
        mlflow.log_params({k: redact(v)[:500] for k, v in flat.items()})
        mlflow.set_tags({"variant": bundle.variant, "kind": bundle.kind, "stage": "train"})

    # -- guarded calls ---------------------------------------------------------------------------------
    def _server_down(self) -> bool:
        return time.monotonic() < self._down_until

    def _went_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_S
        if not self._warned:
            self._warned = True
            log.warning("MLflow tracking at %s failed (%s): training goes on; metrics are kept and sent when it "
                        "answers again (asked every %g s), samples and plots meanwhile are dropped",
                        redact(self._uri), redact(exc), RETRY_AFTER_S)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> bool:
        """``fn(...)`` unless the server is down; a failure starts an outage. True: it ran."""
        if self._client is None:
            return False
        if self._server_down():
            self._lost += 1
            return False
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking never stops the training
            self._went_down(exc)
            self._lost += 1
            return False
        return True

    def _flush(self) -> None:
        """Send the kept metric values, oldest first, in MLflow's batches."""
        while self._pending and self._client is not None and not self._server_down():
            batch = [self._pending[i] for i in range(min(_BATCH, len(self._pending)))]
            try:
                self._client.log_batch(self.run_id, metrics=batch)
            except Exception as exc:  # noqa: BLE001 - kept for the next try
                self._went_down(exc)
                return
            for _ in batch:
                self._pending.popleft()

    def _keep(self, row: dict[str, float], step: int) -> None:
        if self._client is None:
            return  # tracking off: MLflow is not imported at all (the GPU kit does not carry it)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in row.items() if np.isfinite(v))
        self._flush()

    # -- what the trainer logs -----------------------------------------------------------------------
    def metric(self, key: str, value: float, step: int) -> None:
        self._keep({key: value}, step)

    def metrics(self, row: dict[str, float], step: int) -> None:
        self._keep(row, step)

    def samples(self, val: dict[str, Any], step: int, sample_rate: int) -> None:
        if self._client is None or not (val.get("audio") or val.get("mels")):
            return
        if self._server_down():
            self._lost += 1
            return
        import soundfile as sf

        n = self.params.train.samples_to_log
        with tempfile.TemporaryDirectory() as tmp:
            d = Path(tmp)
            for name, gen, ref in val.get("audio", [])[:n]:
                sf.write(d / f"{name}_generated.wav", np.clip(gen, -1, 1), sample_rate, subtype="PCM_16")
                if ref is not None:
                    sf.write(d / f"{name}_reference.wav", np.clip(ref, -1, 1), sample_rate, subtype="PCM_16")
            for name, ref, gen in val.get("mels", [])[:n]:
                plot_mels(d / f"{name}_mel.png", ref, gen, title=f"{name} @ step {step}")
            self._call(self._client.log_artifacts, self.run_id, str(d), artifact_path=f"samples/step_{step:07d}")

    def final(self, metrics: dict[str, Any], paths: Any) -> None:
        if self._client is None:
            return
        self._down_until = 0.0  # the end of the training: one more try whatever the last outage
        self._keep({f"final_{k}": float(v) for k, v in metrics.items()
                    if isinstance(v, (int, float)) and np.isfinite(v)}, 0)
        if Path(paths.curve).is_file():
            self._call(self._client.log_artifact, self.run_id, str(paths.curve), artifact_path="curves")

    def end(self, status: str = "FINISHED") -> None:
        if self._client is None:
            return
        import mlflow

        self._down_until = 0.0
        self._flush()
        try:
            mlflow.end_run(status=status)  # pops the active run even when the server does not answer
        except Exception as exc:  # noqa: BLE001 - the run stays RUNNING in the store
            self._went_down(exc)
        if self._pending:
            log.warning("MLflow tracking at %s did not answer by the end of the training: %d metric values "
                        "could not be sent", redact(self._uri), len(self._pending))
        elif self._warned:
            log.info("MLflow tracking at %s answered again: every metric value was sent (%d sample/plot uploads "
                     "of the outage dropped)", redact(self._uri), self._lost)
        self._client = None
        self._http.close()
