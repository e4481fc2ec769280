"""The MLflow experiment ganpipe creates is tagged as model development, so the
MLflow UI shows it as model training (runs table with metrics), not as a GenAI app (traces)."""

from __future__ import annotations

import shutil

from tests.support.registry_project import mlflow_template


def test_new_and_existing_experiments_are_tagged_as_model_development(tmp_path, tmp_path_factory):
    import mlflow

    from ganpipe.config import TrackingParams
    from ganpipe.training.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, runs_url, setup_mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template(tmp_path_factory), db)
    uri = f"sqlite:///{db}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert EXPERIMENT_KIND == "custom_model_development"  # MLflow's value for model training

    def params(name: str) -> TrackingParams:
        return TrackingParams(tracking_uri=uri, artifact_location=str(tmp_path / "artifacts"), experiment=name)

    new = setup_mlflow(params("fresh"))
    assert client.get_experiment(new).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    # an experiment made before the tag existed gets it; a kind set by hand is kept
    old = client.create_experiment("old", artifact_location=(tmp_path / "a").as_uri())
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert setup_mlflow(params("old")) == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    mine = client.create_experiment("mine", artifact_location=(tmp_path / "b").as_uri(),
                                    tags={EXPERIMENT_KIND_TAG: "finetuning"})
    setup_mlflow(params("mine"))
    assert client.get_experiment(mine).tags[EXPERIMENT_KIND_TAG] == "finetuning"
    assert runs_url(new) == f"http://127.0.0.1:5000/#/experiments/{new}/runs?workflowType=machine_learning"
