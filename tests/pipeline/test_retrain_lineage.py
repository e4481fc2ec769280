"""A retrain cycle's lineage on a real DVC project: it commits dvc.lock and metrics tagged with the
registered version, a fine-tune (`dvc exp run -S train.fine_tune_from=...`) leaves `git status`
clean while its tag keeps the starting model, and an up-to-date pipeline ends in seconds with
"nothing changed, no new version".

The pipeline is one tiny DVC stage that installs a prepared generator file as models/generator.pt
with its metrics/eval.json (which generator, and its MCD, come from the tracked which.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.registry_project import MODEL, aliases, make_generator, make_project, mlflow_template

STAGE = """\
import json, os, shutil, yaml
from pathlib import Path
which = json.loads(Path("which.json").read_text())
start = (yaml.safe_load(Path("params.yaml").read_text())["train"] or {}).get("fine_tune_from")
Path("fine_tune_from.log").write_text(str(start))
Path("models").mkdir(exist_ok=True)
Path("metrics").mkdir(exist_ok=True)
shutil.copy(f"gens/{which['gen']}.pt", "models/generator.pt")
Path("metrics/eval.json").write_text(json.dumps({"kind": "vocoder", "variant": "hifigan_v3", "step": 7,
                                                 "mcd": which["mcd"]}))
"""

DVC_YAML = """\
stages:
  train:
    cmd: python stage.py
    deps: [stage.py, which.json]
    params: [train.fine_tune_from]
    outs: [models/generator.pt]
    metrics:
      - metrics/eval.json:
          cache: false
"""


def sh(root: Path, *args: str) -> str:
    return subprocess.run(list(args), cwd=root, check=True, capture_output=True, text=True).stdout


def git(root: Path, *args: str) -> str:
    return sh(root, "git", "-c", "user.email=t@t", "-c", "user.name=t", *args)


def which(root: Path, gen: str, mcd: float) -> None:
    (root / "which.json").write_text(json.dumps({"gen": gen, "mcd": mcd}))


@pytest.mark.slow  # real dvc repro / dvc exp run
@pytest.mark.network  # a Prefect server (prefect_harness)
def test_cycles_commit_and_tag_leave_the_tree_clean_and_skip_when_nothing_changed(tmp_path, tmp_path_factory,
                                                                                  prefect_harness):
    from flows.retrain import NOTHING_CHANGED, retrain_flow

    root = tmp_path / "proj"
    make_project(root, mlflow_template(tmp_path_factory), {"model_name": MODEL, "retries": 0})
    for seed in (1, 2):
        make_generator(root / "gens" / f"g{seed}.pt", seed=seed)
    (root / "stage.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / ".gitignore").write_text(".mlflow/\ngens/\n*.log\n")
    which(root, "g1", 8.0)
    git(root, "init", "-q")
    sh(root, sys.executable, "-m", "dvc", "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "project")

    first = retrain_flow(project_dir=str(root), push=False)
    assert first["registration"]["decision"] == "champion" and first["git"]["tag"] == f"{MODEL}-v1"
    assert git(root, "status", "--porcelain") == ""
    assert json.loads(git(root, "show", f"{MODEL}-v1:metrics/eval.json"))["mcd"] == 8.0
    assert "train:" in git(root, "show", f"{MODEL}-v1:dvc.lock")

    t0 = time.perf_counter()
    idle = retrain_flow(project_dir=str(root), push=False)
    print(f"no-op cycle: {time.perf_counter() - t0:.1f} s")  # reported, not asserted (shared machines)
    assert idle["status"] == "unchanged" and idle["registration"] == NOTHING_CHANGED
    assert aliases(root) == {"candidate": "1", "champion": "1"}

    # a fine-tune from the champion (dvc exp run -S writes params.yaml): promoted, tagged with the
    # starting model in params.yaml, and the tree ends clean
    which(root, "g2", 7.0)
    git(root, "commit", "-qam", "new data")
    tuned = retrain_flow(project_dir=str(root), push=False, fine_tune_from_champion=True)
    assert (root / "fine_tune_from.log").read_text() == f"models:/{MODEL}/1"
    assert tuned["registration"]["decision"] == "champion" and tuned["git"]["tag"] == f"{MODEL}-v2"
    assert git(root, "status", "--porcelain") == ""
    assert f"fine_tune_from: models:/{MODEL}/1" in git(root, "show", f"{MODEL}-v2:params.yaml")
    assert "fine_tune_from: null" in (root / "params.yaml").read_text()
    from tests.support.registry_project import client_for

    assert client_for(root).get_model_version(MODEL, "2").tags["parent"] == f"models:/{MODEL}/1"
