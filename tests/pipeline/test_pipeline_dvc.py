"""End to end: `dvc repro` on a fresh copy of the repository runs download -> prepare -> features ->
train -> evaluate -> register on the demo corpus (a tiny model, few steps); a second `dvc repro` does nothing;
changing one mel parameter re-runs features and what depends on it, not download/prepare."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.fresh_clone import edit_params, fresh_clone, run

pytestmark = pytest.mark.slow


@pytest.fixture()
def fresh_repo(tmp_path: Path) -> Path:
    return fresh_clone(tmp_path / "repo")


def test_dvc_repro_end_to_end(fresh_repo: Path, prefect_env: dict[str, str]):
    repo, env = fresh_repo, prefect_env
    out = run(["dvc", "repro"], repo, env)
    for stage in ("download", "prepare", "features", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in out
    manifest = (repo / "data/prepared/manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + 10
    index = (repo / "data/features/index.csv").read_text().splitlines()
    assert len(index) == 1 + 10
    mel = np.load(repo / "data/features/mels" / (index[1].split(",")[0] + ".npy"))
    assert mel.shape[0] == 80
    assert json.loads((repo / "metrics/features.json").read_text())["utterances"] == 10
    train = json.loads((repo / "metrics/train.json").read_text())
    assert train["steps"] == 6 and (repo / "models/generator.pt").is_file()
    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert ev["utterances"] == 1 and ev["mcd"] > 0 and ev["variant"] == "vocos"
    assert ev["griffin_lim"]["iterations"] == 32 and ev["griffin_lim"]["mcd"] > 0  # the baseline beside it
    assert list((repo / "reports/eval/samples").glob("*_griffin_lim.wav"))
    assert list((repo / "checkpoints").glob("vocos-*/step_*.pt"))
    assert "metrics/eval.json" in run(["dvc", "metrics", "show"], repo, env)
    reg = json.loads((repo / "metrics/register.json").read_text())
    assert reg["decision"] == "champion" and reg["model_name"] == "ganpipe-demo-vocos"  # first version

    # a consumer loads the champion from the registry and synthesises audio (copy-synthesis of a clip)
    clip = sorted((repo / "data/prepared/wavs").rglob("*.wav"))[0]
    run(["ganpipe", "synthesize", "--model", "models:/ganpipe-demo-vocos@champion", "--wav", str(clip),
         "-o", str(repo / "out.wav")], repo, env)
    ref, ref_rate = sf.read(clip)
    audio, rate = sf.read(repo / "out.wav")
    assert rate == ref_rate == 22050 and len(ref) - 256 < len(audio) <= len(ref)  # whole frames of hop 256
    assert np.isfinite(audio).all() and np.abs(audio).max() > 1e-3

    again = run(["dvc", "repro"], repo, env)  # only the always-changed remote check runs (a HEAD per URL archive)
    assert re.findall(r"Running stage '([^']+)'", again) == ["remote_validators"], again
    assert "Stage 'download' didn't change" in again and "Stage 'register' didn't change" in again, again

    edit_params(repo, {"mel": {"n_mels": 64}})
    changed = run(["dvc", "repro"], repo, env)
    assert "Running stage 'features'" in changed and "Running stage 'train'" in changed
    assert "Running stage 'download'" not in changed and "Running stage 'prepare'" not in changed
    mel = np.load(repo / "data/features/mels" / (index[1].split(",")[0] + ".npy"))
    assert mel.shape[0] == 64
