"""A team's DVC remote: clone A runs the pipeline's first stage and pushes its outputs and run-cache to
the project's remote (`local`, here A's own dvc-storage/ standing for a shared folder); clone B points the
remote at it (`dvc remote modify --local`), pulls, and `dvc repro` runs nothing; clone C, without a
dvc.lock, `dvc repro --pull` finds the run in the remote's run-cache and checks the stage's outputs out instead of running it.
The stage is the real `validate` of dvc.yaml (seconds, no Prefect): what is tested is DVC's remote
with the project's .dvc/config, not the training.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.support.fresh_clone import fresh_clone, run

pytestmark = pytest.mark.slow  # DVC and git subprocesses

OUTS = ("data/params.valid", "data/mel.json")


def _dvc(repo: Path, *args: str) -> str:
    return run([sys.executable, "-m", "dvc", *args], repo)


def _clone(origin: Path, dest: Path, remote: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], origin.parent)
    _dvc(dest, "remote", "modify", "--local", "local", "url", str(remote))  # the team's shared remote
    return dest


def test_second_clone_pulls_and_repro_runs_nothing(tmp_path: Path):
    a = fresh_clone(tmp_path / "a")
    assert "Running stage 'validate'" in _dvc(a, "repro", "validate")
    _dvc(a, "push", "--run-cache")
    run(["git", "add", "dvc.lock"], a)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "validate"], a)
    remote = a / "dvc-storage"
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert pushed and (remote / "runs").is_dir()  # the objects and the run-cache
    print("pushed file link counts (1 = a copy beside the cache):", sorted({os.stat(p).st_nlink for p in pushed}))

    b = _clone(a, tmp_path / "b", remote)
    assert not any((b / out).exists() for out in OUTS)
    _dvc(b, "pull", "validate")
    assert all((b / out).read_bytes() == (a / out).read_bytes() for out in OUTS)
    again = _dvc(b, "repro", "validate")
    assert "Running stage" not in again and "didn't change" in again, again

    c = _clone(a, tmp_path / "c", remote)
    (c / "dvc.lock").unlink()  # no record of the run: only the remote's run-cache knows it
    restored = _dvc(c, "repro", "--pull", "validate")  # the run-cache and the outputs it names
    assert "Running stage" not in restored and "is cached" in restored, restored
    assert all((c / out).read_bytes() == (a / out).read_bytes() for out in OUTS)
