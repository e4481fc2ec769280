"""A fresh copy of the repository (its tracked files, committed in a new git repo) with a tiny
pipeline configuration: 2 demo speakers x 5 utterances, a tiny HiFi-GAN V3, 6 training steps."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

TINY_PIPELINE = {
    "dataset": {"demo": {"n_speakers": 2, "utterances_per_speaker": 5}},
    "model": {"overrides": {"dim": 16, "intermediate_dim": 32, "num_layers": 2, "discriminator_channel_divisor": 32}},
    "train": {"steps": 6, "batch_size": 2, "segment_samples": 2048, "checkpoint_every": 3, "log_every": 2,
              "validate_every": 3, "num_workers": 0, "threads": 1,
              "discriminator_start_step": 3},  # both phases of the demo's training, D from step 3
    "evaluation": {"max_utterances": 1, "samples_to_save": 1},
}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without Prefect settings and MLflow store addresses (a child picks its
    project's own; ``mlflow.set_tracking_uri`` in this process also sets $MLFLOW_TRACKING_URI), the
    venv first on PATH."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout + proc.stderr


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def edit_params(repo: Path, changes: dict) -> None:
    path = repo / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), changes), sort_keys=False))


def fresh_clone(dest: Path) -> Path:
    """Copy the tracked files to ``dest`` (without dvc.lock and metrics: as if never run), apply
    TINY_PIPELINE to params.yaml and commit everything in a new git repository."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO_ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for name in ("dvc.lock", "metrics"):
        path = dest / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    edit_params(dest, TINY_PIPELINE)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    run(["git", "init", "-q"], dest)
    run([*git, "add", "-A"], dest)
    run([*git, "commit", "-qm", "clone"], dest)
    return dest
