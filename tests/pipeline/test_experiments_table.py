"""`ganpipe experiments` makes DVC experiments comparable at a glance: one row per
experiment, only the params that differ, the evaluation metrics and the Griffin-Lim baseline's, plain
text when piped (a real small DVC repository with two experiments)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.fresh_clone import clean_env, run

pytestmark = pytest.mark.slow  # real dvc subprocesses

STAGE = """
import json, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))
pathlib.Path("metrics").mkdir(exist_ok=True)
json.dump({"mcd": 5.0 - p["train"]["steps"] / 1000, "pesq": 2.0, "griffin_lim": {"mcd": 6.1, "pesq": 2.5}},
          open("metrics/eval.json", "w"))
"""


def test_experiments_table(tmp_path: Path):
    repo, env = tmp_path / "repo", clean_env()
    repo.mkdir()
    (repo / "s.py").write_text(STAGE)
    (repo / "params.yaml").write_text(yaml.safe_dump({"train": {"steps": 100, "lr": 0.001},
                                                      "model": {"variant": "vocos"}}))
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": "python s.py", "deps": ["s.py"], "params": ["train", "model"],
        "metrics": [{"metrics/eval.json": {"cache": False}}]}}}))
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "repro"], repo, env)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base"], repo)
    run(["dvc", "exp", "run", "-n", "more-steps", "-S", "train.steps=300"], repo, env)
    run(["dvc", "exp", "run", "-n", "low-lr", "-S", "train.steps=100", "-S", "train.lr=0.0001"], repo, env)
    out = subprocess.run([sys.executable, "-m", "ganpipe.cli", "experiments"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].split() == ["experiment", "train.lr", "train.steps", "mcd", "mrstft", "pesq", "f0_rmse_cents",
                                "vuv_f1", "gl_mcd", "gl_mrstft", "gl_pesq"]  # model.variant: the same everywhere
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["more-steps"][1:4] == ["0.001", "300", "4.700"] and rows["more-steps"][-3] == "6.100"
    assert rows["low-lr"][1:4] == ["0.0001", "100", "4.900"]
    assert "…" not in out.stdout and max(map(len, lines)) < 120
