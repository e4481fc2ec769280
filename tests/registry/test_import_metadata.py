"""An imported model's registry entry is honest about itself: its dataset and
data-version tags say "imported" and name the source file and sha256, its description names the source,
and its register run holds the evaluate stage's samples, per-utterance CSV and plots. And the same clips
score the same MCD through `import-model --register --eval-dir` and `evaluate --ref/--gen` (item 7: both
score the 16-bit WAV that is written, not the float output)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from ganpipe.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def clips(folder: Path, lj_wavs: list[Path], n: int, seconds: float) -> Path:
    folder.mkdir()
    for wav in lj_wavs[:n]:
        audio, sr = sf.read(wav, dtype="int16")
        sf.write(folder / wav.name, audio[: int(seconds * sr)], sr, subtype="PCM_16")
    return folder


@pytest.mark.slow  # the full-size published V1 on five real clips, twice
def test_same_clips_same_mcd_through_register_and_folder_scoring(tmp_path: Path, published_v1: Path, lj_wavs):
    from ganpipe.config import parse_params
    from ganpipe.importing.registration import score

    refs = clips(tmp_path / "refs", lj_wavs, 5, 2.0)
    gens = tmp_path / "gens"
    for ref in sorted(refs.glob("*.wav")):
        res = CliRunner().invoke(app, ["synthesize", "--model", str(published_v1), "--wav", str(ref),
                                       "-o", str(gens / ref.name)])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["evaluate", "--ref", str(refs), "--gen", str(gens), "--out", str(tmp_path / "s.json")])
    assert res.exit_code == 0, res.output
    folder = json.loads((tmp_path / "s.json").read_text())["means"]
    registered = score(published_v1, parse_params({"evaluation": {"griffin_lim_iterations": 0}}), tmp_path, refs)
    assert registered["utterances"] == 5
    for key in ("mcd", "mrstft", "pesq"):
        assert registered[key] == pytest.approx(folder[key], abs=1e-6), key


@pytest.mark.slow  # logs an MLflow model
def test_imported_version_tags_description_and_report(tmp_path, tmp_path_factory, lj_wavs, monkeypatch):
    from mlflow import MlflowClient

    from tests.support.imported_model import jik876_imported
    from tests.support.registry_project import make_project, mlflow_template

    make_project(tmp_path, mlflow_template(tmp_path_factory), {"promote_from": "any"})
    model = jik876_imported(tmp_path / "lj_small.pt", discriminators=False)
    refs = clips(tmp_path / "refs", lj_wavs, 2, 1.5)
    monkeypatch.chdir(tmp_path)
    from ganpipe.config import load_params
    from ganpipe.importing.registration import register_imported

    registration, metrics = register_imported(model.path, load_params("params.yaml"), ".", "lj-small", refs)
    client = MlflowClient(tracking_uri="sqlite:///.mlflow/mlflow.db")
    mv = client.get_model_version("lj-small", registration.version)
    source = json.loads(json.dumps(__import__("torch").load(model.path, weights_only=True)["source"]))
    expected = f"imported: {Path(source['file']).name} sha256 {source['sha256']}"
    assert mv.tags["dataset"] == "imported" and mv.tags["imported_from"] == expected
    assert mv.tags["data_features_md5"] == expected and mv.tags["data_prepared_md5"] == expected
    assert mv.description.startswith(f"imported jik876 checkpoint {Path(source['file']).name}"), mv.description
    artifacts = {a.path for a in client.list_artifacts(registration.run_id, "eval")}
    assert {"eval/per_utterance.csv", "eval/metrics_histograms.png", "eval/samples"} <= artifacts, artifacts
    samples = {Path(a.path).name for a in client.list_artifacts(registration.run_id, "eval/samples")}
    assert any(s.endswith("_generated.wav") for s in samples) and any(s.endswith("_mel.png") for s in samples)
