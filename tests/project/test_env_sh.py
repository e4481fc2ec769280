"""`source scripts/env.sh` changes nothing in the caller's shell but PATH and the telemetry variables
(issue 15, item 1: it left `set -euo pipefail` on, so the next failing command closed the user's
terminal); scripts/test.sh and scripts/repro.sh, which source it, still stop at the first error.

Each test runs a real bash on a copy of the scripts in a tiny project whose .venv is a stub with an
up-to-date stamp, so env.sh has nothing to install (no network, no minutes of pip)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

BASH = shutil.which("bash")
pytestmark = pytest.mark.skipif(BASH is None, reason="needs bash")
RUFF = "python -m ruff check --no-cache --quiet ."  # the linter scripts/test.sh runs before pytest


def project(tmp_path: Path) -> Path:
    """scripts/ + lock files + a stub .venv/bin/python (records its arguments) with a matching stamp."""
    root = tmp_path / "proj"
    (root / "scripts").mkdir(parents=True)
    for name in ("env.sh", "test.sh", "repro.sh"):
        shutil.copy2(REPO_ROOT / "scripts" / name, root / "scripts" / name)
    (root / "requirements.lock").write_text("numpy==1\n")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    for tool in ("python", "dvc"):
        stub = venv_bin / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{root}/calls.log"\n')
        stub.chmod(0o755)
    lock = (root / "requirements.lock").read_bytes() + (root / "pyproject.toml").read_bytes()
    (root / ".venv" / ".ganpipe-lock.sha256").write_text(hashlib.sha256(lock).hexdigest() + "\n")
    (root / "requirements-test.lock").write_text("oracle==1\n")
    test_lock = (root / "requirements-test.lock").read_bytes()
    (root / ".venv" / ".ganpipe-test-lock.sha256").write_text(hashlib.sha256(test_lock).hexdigest() + "\n")
    return root


def bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "HOME": str(cwd), "PYTHON": sys.executable, **env}
    return subprocess.run([BASH, "--norc", "--noprofile", "-c", script], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


STATE = 'echo "opts=$- $(shopt -po | tr "\\n" " ") $(shopt -p | md5sum) cwd=$PWD"'


@pytest.mark.parametrize("options", ["set +euo pipefail", "set -euo pipefail", "set -u; set +e"])
def test_sourcing_keeps_the_callers_shell_options_and_directory(tmp_path: Path, options: str):
    root = project(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = bash(f'{options}; {STATE}; source "{root}/scripts/env.sh"; {STATE}; '
               'echo "path=$PATH"; echo "track=$DO_NOT_TRACK/$DVC_NO_ANALYTICS"', elsewhere)
    assert res.returncode == 0, res.stderr
    before, after = [line for line in res.stdout.splitlines() if line.startswith("opts=")]
    assert before == after
    assert f"path={root}/.venv/bin:" in res.stdout and "track=1/1" in res.stdout


def test_after_sourcing_a_failing_command_does_not_end_the_shell(tmp_path: Path):
    root = project(tmp_path)
    res = bash(f'set +e; source "{root}/scripts/env.sh"; false; echo "alive $?"; '
               'ls /nonexistent 2>/dev/null | cat; echo "still alive"; echo "$undefined_var"; echo "last"', tmp_path)
    assert res.returncode == 0, res.stderr
    assert "alive 1" in res.stdout and "still alive" in res.stdout and "last" in res.stdout


def test_a_failed_setup_returns_non_zero_without_ending_the_shell(tmp_path: Path):
    root = project(tmp_path)
    bad_python = tmp_path / "python2"
    bad_python.write_text("#!/bin/sh\nexit 3\n")
    bad_python.chmod(0o755)
    res = bash(f'set +e; {STATE}; source "{root}/scripts/env.sh"; echo "rc=$?"; {STATE}; echo "path=$PATH"',
               tmp_path, PYTHON=str(bad_python))
    assert res.returncode == 0, res.stderr
    assert "rc=1" in res.stdout and "failed" in res.stderr
    before, after = [line for line in res.stdout.splitlines() if line.startswith("opts=")]
    assert before == after and f"{root}/.venv/bin" not in res.stdout


def test_test_and_repro_scripts_run_in_the_venv_and_stop_at_the_first_error(tmp_path: Path):
    root = project(tmp_path)
    env = {"GANPIPE_PREFECT_SERVER": "0"}
    ok = bash(f'"{root}/scripts/test.sh" -k mel && "{root}/scripts/repro.sh" train', tmp_path, **env)
    assert ok.returncode == 0, ok.stderr
    assert (root / "calls.log").read_text().splitlines() == [RUFF, "python -m pytest -k mel", "dvc repro train"]

    (root / "calls.log").unlink()
    bad_python = tmp_path / "python2"
    bad_python.write_text("#!/bin/sh\nexit 3\n")
    bad_python.chmod(0o755)
    for script in ("test.sh", "repro.sh"):
        res = bash(f'"{root}/scripts/{script}"; echo "rc=$?"', tmp_path, PYTHON=str(bad_python), **env)
        assert "rc=0" not in res.stdout, (script, res.stdout, res.stderr)
    assert not (root / "calls.log").exists()  # neither pytest nor dvc ran after the failed setup

    # the scripts keep their own `set -euo pipefail` after sourcing env.sh: a failing step stops them
    for script in ("test.sh", "repro.sh"):
        text = (root / "scripts" / script).read_text()
        failing = text.replace('cd "$ROOT"\n', 'cd "$ROOT"\nfalse\necho REACHED\n', 1)
        (root / "scripts" / f"broken-{script}").write_text(failing)
        res = bash(f'bash "{root}/scripts/broken-{script}"', tmp_path, **env)
        assert res.returncode != 0 and "REACHED" not in res.stdout, (script, res.stdout)


def test_only_the_test_command_installs_the_test_oracles_pinned_and_once(tmp_path: Path):
    """requirements-test.lock (the reference oracles) is installed by scripts/test.sh when its stamp
    is stale, without dependencies; scripts/repro.sh (the main job) never installs it."""
    root = project(tmp_path)
    (root / "requirements-test.lock").write_text("oracle==2\n")
    env = {"GANPIPE_PREFECT_SERVER": "0"}
    res = bash(f'"{root}/scripts/repro.sh" train', tmp_path, **env)
    assert res.returncode == 0, res.stderr
    assert (root / "calls.log").read_text().splitlines() == ["dvc repro train"]
    (root / "calls.log").unlink()
    for _ in range(2):
        res = bash(f'"{root}/scripts/test.sh" -k x', tmp_path, **env)
        assert res.returncode == 0, res.stderr
    calls = (root / "calls.log").read_text().splitlines()
    assert calls == ["python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "
                     "-r requirements-test.lock", RUFF, "python -m pytest -k x", RUFF, "python -m pytest -k x"]


def test_the_remote_extra_installs_its_lock_once_and_an_unknown_extra_fails(tmp_path: Path):
    """GANPIPE_EXTRAS=remote also installs requirements-remote.lock (dvc-s3, dvc-ssh), then its stamp
    is up to date; a name that is not an extra stops with the list of extras."""
    root = project(tmp_path)
    (root / "requirements-remote.lock").write_text("dvc-s3==1\n")
    for _ in range(2):
        res = bash(f'GANPIPE_EXTRAS=remote source "{root}/scripts/env.sh"', tmp_path)
        assert res.returncode == 0, res.stderr
    installs = [c for c in (root / "calls.log").read_text().splitlines() if " -r " in c]
    assert [c.split(" -r ")[1] for c in installs] == ["requirements.lock", "requirements-remote.lock"]
    res = bash(f'GANPIPE_EXTRAS=s4 bash "{root}/scripts/env.sh"', tmp_path)
    assert res.returncode != 0 and "the extras are: remote" in res.stderr
