"""MLflow logging of a training run (rank 0 only): params, losses, validation, samples, plots.

The tracking store is the sqlite database and artifact folder of params ``tracking`` (inside the
project, git-ignored). A resumed training continues the same MLflow run (its id is kept next to the
checkpoints). With ``tracking.enabled: false`` every call is a no-op.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.atomic import write_json
from ganpipe.config import Params, TrackingParams
from ganpipe.plots import plot_mels

# The MLflow experiment tag that says what kind of work an experiment holds (values in MLflow's UI:
# genai_development, custom_model_development, ...). Model development: the UI's "Model training"
# view (runs table with metrics), not the GenAI view (traces). MLflow 3.17's UI also keeps a global
# GenAI / Model training switch (sidebar; ?workflowType=machine_learning in a URL): runs_url().
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def setup_mlflow(tp: TrackingParams) -> str:
    """Point MLflow at the project's store; create the experiment (tagged as model development, as
    is an existing one without the tag); return its id."""
    import mlflow

    if tp.tracking_uri.startswith("sqlite:///"):
        Path(tp.tracking_uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tp.tracking_uri)
    exp = mlflow.get_experiment_by_name(tp.experiment)
    if exp is not None:
        if EXPERIMENT_KIND_TAG not in exp.tags:  # made before ganpipe tagged it (a kind set by hand is kept)
            mlflow.MlflowClient(tracking_uri=tp.tracking_uri).set_experiment_tag(
                exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = Path(tp.artifact_location).resolve()
    location.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(tp.experiment, artifact_location=location.as_uri(),
                                    tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})


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
        self._mlflow: Any = None

    def start(self, bundle: Any, recipe: Any, resumed_step: int, mel: Any = None) -> None:
        """``mel``: the features' MelConfig (default: params.yaml's; mel.preset from_model has none there)."""
        if not self.enabled:
            return
        import mlflow

        self._mlflow = mlflow
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
        mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
        mlflow.set_tags({"variant": bundle.variant, "kind": bundle.kind, "stage": "train"})

    def metric(self, key: str, value: float, step: int) -> None:
        if self._mlflow is not None and np.isfinite(value):
            self._mlflow.log_metric(key, float(value), step=step)

    def metrics(self, row: dict[str, float], step: int) -> None:
        if self._mlflow is not None:
            self._mlflow.log_metrics({k: float(v) for k, v in row.items() if np.isfinite(v)}, step=step)

    def samples(self, val: dict[str, Any], step: int, sample_rate: int) -> None:
        if self._mlflow is None or not (val.get("audio") or val.get("mels")):
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
            self._mlflow.log_artifacts(str(d), artifact_path=f"samples/step_{step:07d}")

    def final(self, metrics: dict[str, Any], paths: Any) -> None:
        if self._mlflow is None:
            return
        self._mlflow.log_metrics({f"final_{k}": float(v) for k, v in metrics.items()
                                  if isinstance(v, (int, float)) and np.isfinite(v)})
        if Path(paths.curve).is_file():
            self._mlflow.log_artifact(str(paths.curve), artifact_path="curves")

    def end(self, status: str = "FINISHED") -> None:
        if self._mlflow is not None:
            self._mlflow.end_run(status=status)
            self._mlflow = None
