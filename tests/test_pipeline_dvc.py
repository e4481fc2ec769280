"""End to end: `dvc repro` on a fresh copy of the repository runs download -> prepare -> features ->
train -> evaluate -> register on the demo corpus (a tiny model, few steps); a second `dvc repro` does nothing;
changing one mel parameter re-runs features and what depends on it, not download/prepare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


@pytest.fixture()
def fresh_clone(tmp_path: Path) -> Path:
    """The repository's tracked files (as a clone would have them) in a new git repo."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    dest = tmp_path / "repo"
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for name in ("dvc.lock", "metrics"):  # start from nothing, as if never run
        path = dest / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["dataset"]["demo"].update(n_speakers=2, utterances_per_speaker=5)
    params["model"]["overrides"] = {"upsample_initial_channel": 16, "discriminator_channel_divisor": 32}
    params["train"].update(steps=6, batch_size=2, segment_samples=2048, checkpoint_every=3, log_every=2,
                           validate_every=3, num_workers=0, threads=1)
    params["evaluation"].update(max_utterances=1, samples_to_save=1)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dest)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], dest)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "clone"], dest)
    return dest


def test_dvc_repro_end_to_end(fresh_clone: Path):
    repo = fresh_clone
    out = run(["dvc", "repro"], repo)
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
    assert ev["utterances"] == 1 and ev["mcd"] > 0 and ev["variant"] == "hifigan_v3"
    assert list((repo / "checkpoints").glob("hifigan_v3-*/step_*.pt"))
    assert "metrics/eval.json" in run(["dvc", "metrics", "show"], repo)
    reg = json.loads((repo / "metrics/register.json").read_text())
    assert reg["decision"] == "champion" and reg["model_name"] == "ganpipe-demo-hifigan_v3"  # first version

    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again and "up to date" in again

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mel"]["n_mels"] = 64
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    changed = run(["dvc", "repro"], repo)
    assert "Running stage 'features'" in changed and "Running stage 'train'" in changed
    assert "Running stage 'download'" not in changed and "Running stage 'prepare'" not in changed
    mel = np.load(repo / "data/features/mels" / (index[1].split(",")[0] + ".npy"))
    assert mel.shape[0] == 64
