"""Tool caches written beside the code (Python bytecode, numba's *.nbi/*.nbc, pytest's cache) are not
part of a stage's dependency hash (issue 15, item 10: ganpipe/metrics/__pycache__ made dvc.lock
differ between machines and after the first run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT


def dvc(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    res = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def dep_hash(repo: Path) -> str:
    return yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["use"]["deps"][0]["md5"]


def test_caches_in_a_dependency_folder_do_not_change_its_hash(tmp_path: Path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    shutil.copy(REPO_ROOT / ".dvcignore", repo / ".dvcignore")
    (repo / "pkg" / "mcd.py").write_text("X = 1\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"use": {"cmd": "echo ok", "deps": ["pkg"]}}}))
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(["init", "-q"], repo)
    dvc(["repro"], repo)
    clean = dep_hash(repo)

    caches = ["__pycache__/mcd.cpython-311.pyc", "__pycache__/mcd._dtw-12.py311.nbi",
              "__pycache__/mcd._dtw-12.py311.1.nbc", "loose.nbi", "loose.nbc", "mcd.pyc",
              ".pytest_cache/v/cache/lastfailed", "sub/__pycache__/x.cpython-310.pyc"]
    for rel in caches:
        (repo / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / "pkg" / rel).write_bytes(os.urandom(64))
    assert "up to date" in dvc(["status"], repo)
    assert "Running stage" not in dvc(["repro"], repo)
    dvc(["repro", "--force"], repo)
    assert dep_hash(repo) == clean  # the same dvc.lock with or without the caches

    (repo / "pkg" / "mcd.py").write_text("X = 2\n")  # a real change still counts
    assert "changed" in dvc(["status"], repo)
