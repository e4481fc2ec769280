"""Helpers the registry, promotion, serving and retrain tests share: tiny generator files, a project whose
MLflow store is copied from a once-initialised template database (creating one costs ~7 s)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ganpipe.config import Params
from ganpipe.mel import MelConfig
from tests.conftest import write_params

MODEL = "ganpipe-demo-hifigan_v3"


_TEMPLATE: dict[str, Path] = {}


def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised (empty) MLflow sqlite database, made once per session."""
    if "db" not in _TEMPLATE:
        from mlflow import MlflowClient

        db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()  # creates the tables
        _TEMPLATE["db"] = db
    return _TEMPLATE["db"]


def make_project(root: Path, template: Path | None, registry: dict | None = None) -> Params:
    """A project folder with params.yaml (relative tracking store) and a copy of the template db
    (``template=None``: keep the project's store, rewrite params.yaml only)."""
    (root / ".mlflow").mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copy(template, root / ".mlflow" / "mlflow.db")
    write_params(root / "params.yaml", {
        "tracking": {"tracking_uri": "sqlite:///.mlflow/mlflow.db", "artifact_location": ".mlflow/artifacts"},
        "registry": {"export_onnx": False, "retries": 1, "retry_delay_seconds": 0, **(registry or {})}})
    from ganpipe.config import load_params

    return load_params(root / "params.yaml")


def make_generator(path: Path, seed: int, step: int = 7, mel: MelConfig | None = None,
                   stats: dict | None = None, variant: str = "hifigan_v3") -> Path:
    """A tiny untrained generator file (different seed -> different weights and hash)."""
    import torch

    from ganpipe.generator_io import save_generator
    from ganpipe.models import TINY_OVERRIDES, build

    mel = mel or MelConfig()
    torch.manual_seed(seed)
    extra = {"n_mels": mel.n_mels} if variant.startswith("hifigan") else {}
    bundle = build(variant, **TINY_OVERRIDES[variant], **extra)
    stats = stats or {"mean": np.zeros(mel.n_mels, np.float32), "std": np.ones(mel.n_mels, np.float32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_generator(path, bundle, bundle.generator, mel, stats, ["LJ"], step=step, run_id=None)
    return path


def eval_json(path: Path, step: int = 7, variant: str = "hifigan_v3", kind: str = "vocoder",
              **metrics: float | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"kind": kind, "variant": variant, "step": step, "split": "test", **metrics}))
    return path


def client_for(root: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def aliases(root: Path, name: str = MODEL) -> dict[str, str]:
    """alias -> version of the registered model."""
    return {a: str(v) for a, v in client_for(root).get_registered_model(name).aliases.items()}


def versions(root: Path, name: str = MODEL) -> list:
    return sorted(client_for(root).search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))


def version_ids(root: Path, name: str = MODEL) -> list[str]:
    return [str(v.version) for v in versions(root, name)]
