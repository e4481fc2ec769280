"""A failed `dvc repro` / `dvc exp run` keeps the train stage's last good outputs:
DVC deletes a stage's outputs before running it unless they are `persist`, and `dvc checkout` can bring
back only what the local cache holds (a fresh clone's cache never holds the committed dvc.lock's
models/generator.pt: its bytes differ run to run) and nothing of the git-tracked `cache: false` ones.
Checked on a real small DVC repository whose stage declares the train stage's outs exactly as
dvc.yaml does, its command a stand-in that writes them, or fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.support.fresh_clone import clean_env, run

pytestmark = pytest.mark.slow  # real dvc subprocesses (~20 s)

WRITE = """
import json, os, sys, yaml
from pathlib import Path
p = yaml.safe_load(open("params.yaml"))["train"]
if p["device"] == "cuda":
    sys.exit("train.device is 'cuda' but no CUDA device is available")
for d in ("models", "metrics", "plots/train", "checkpoints"):
    Path(d).mkdir(parents=True, exist_ok=True)
Path("models/generator.pt").write_bytes(b"weights %d %s" % (p["steps"], os.urandom(8).hex().encode()))
Path("metrics/train.json").write_text(json.dumps({"steps": p["steps"]}))
Path("plots/train_loss.csv").write_text("step,g_loss\\n1,2.0\\n")
Path("plots/train/g_loss.png").write_bytes(b"png")
"""


def git(repo: Path, *args: str) -> None:
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], repo)


def test_a_failed_train_keeps_the_last_good_outputs(tmp_path: Path):
    train = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["train"]
    stage = {"cmd": "python write.py", "deps": ["write.py"], "params": ["train"],
             **{k: train[k] for k in ("outs", "metrics", "plots")}}
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "write.py").write_text(WRITE)
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"steps": 6, "device": "cpu"}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}, sort_keys=False))
    env = clean_env()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "repro"], repo, env)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a good run")
    outputs = ["models/generator.pt", "metrics/train.json", "plots/train_loss.csv", "plots/train/g_loss.png"]
    good = {p: (repo / p).read_bytes() for p in outputs}

    for cmd in (["dvc", "exp", "run", "-S", "train.device=cuda", "-S", "train.steps=7"],
                ["dvc", "repro"]):
        res = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode != 0 and "no CUDA device" in res.stdout + res.stderr, res.stdout + res.stderr
        assert {p: (repo / p).read_bytes() for p in outputs if (repo / p).is_file()} == good, cmd  # nothing deleted
        out = run(["dvc", "checkout"], repo, env)  # and DVC agrees: nothing to restore, nothing missing
        assert "Checkout failed" not in out
        assert {p: (repo / p).read_bytes() for p in outputs} == good
    run(["git", "checkout", "params.yaml"], repo)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], repo, env)
