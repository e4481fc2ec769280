"""The retrain loop for real, on a fresh copy of the repository with a tiny pipeline:

1. a real ``prefect server`` on 127.0.0.1; ``ganpipe schedule --cron ...`` creates the scheduled
   deployment; a triggered run executes the whole ``dvc repro`` (download ... register), pushes to
   the DVC remote and registers version 1 as champion;
2. after a parameter change, two retrain *processes* are started at the same moment on the same
   project: both succeed, the pipeline runs once (the second finds it up to date), one new version
   is registered (no duplicate), aliases are consistent, the workspace matches dvc.lock, the remote
   holds everything, and every object in the DVC cache still has the content its name says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.fresh_clone import clean_env, edit_params, fresh_clone, run
from tests.support.prefect_server import start_server, stop, wait_healthy, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.network]

MODEL = "ganpipe-demo-vocos"


def registry(repo: Path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def versions(repo: Path) -> list[str]:
    return sorted((str(mv.version) for mv in registry(repo).search_model_versions(f"name='{MODEL}'")), key=int)


def aliases(repo: Path) -> dict[str, str]:
    return {k: str(v) for k, v in registry(repo).get_registered_model(MODEL).aliases.items()}


def corrupt_cache_objects(repo: Path) -> list[str]:
    """Cache objects whose content does not hash to their name (DVC 3 layout: files/md5/ab/cdef...)."""
    bad = []
    root = repo / ".dvc" / "cache" / "files" / "md5"
    for path in root.glob("*/*"):
        name = path.parent.name + path.name.removesuffix(".dir")
        if hashlib.md5(path.read_bytes()).hexdigest() != name:
            bad.append(str(path.relative_to(root)))
    return bad


def assert_dvc_consistent(repo: Path, env: dict[str, str]) -> None:
    from flows.retrain import up_to_date

    status = json.loads(run(["dvc", "status", "--json"], repo, env).strip().splitlines()[-1])
    assert up_to_date(status), f"workspace differs from dvc.lock: {status}"  # remote_validators: always changed
    cloud = json.loads(run(["dvc", "status", "--cloud", "--json"], repo, env).strip().splitlines()[-1])
    assert cloud == {}, f"the DVC remote lacks: {cloud}"
    assert not corrupt_cache_objects(repo)


def test_scheduled_full_retrain_then_two_retrains_at_once(tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env = clean_env()
    server, api, server_log = start_server(tmp_path, env)  # sets PREFECT_API_URL etc. in env
    serve = None
    try:
        repo = fresh_clone(tmp_path / "repo")  # while the server starts
        wait_healthy(server, api, server_log)

        # -- 1. the scheduled deployment, triggered once: the whole pipeline --------------------
        serve_log = tmp_path / "serve.log"
        serve = subprocess.Popen([sys.executable, "-m", "ganpipe.cli", "schedule", "--cron", "0 3 * * 0"],
                                 cwd=repo, env=env, stdout=serve_log.open("w"), stderr=subprocess.STDOUT,
                                 start_new_session=True)
        with temporary_settings({PREFECT_API_URL: api}):
            async def deployment():
                async with get_client() as client:
                    try:
                        return await client.read_deployment_by_name("retrain/ganpipe-retrain")
                    except Exception:  # noqa: BLE001 - not created yet
                        return None

            dep = wait_until(lambda: asyncio.run(deployment()), "deployment", [server_log, serve_log], [server, serve])
            assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * 0"]
            assert dep.schedules[0].active and dep.schedules[0].schedule.timezone == "UTC"
            assert dep.parameters["project_dir"] == str(repo.resolve()) and dep.parameters["push"] is True

            flow_run = run_deployment("retrain/ganpipe-retrain", timeout=900)
            log = serve_log.read_text()
            assert flow_run.state.is_completed(), (flow_run.state, log[-4000:])
        stop(serve)
        serve = None
        for stage in ("download", "prepare", "features", "train", "evaluate", "register"):
            assert f"Running stage '{stage}'" in log, f"stage {stage} did not run:\n{log[-4000:]}"
        assert versions(repo) == ["1"] and aliases(repo) == {"candidate": "1", "champion": "1"}
        assert json.loads((repo / "metrics/register.json").read_text())["version"] == "1"
        assert_dvc_consistent(repo, env)

        # -- 2. two retrains at once after a change: they take turns ------------------------------
        edit_params(repo, {"train": {"steps": 9}})  # train resumes at step 6 -> evaluate -> register
        logs = [tmp_path / f"retrain-{i}.log" for i in range(2)]
        procs = [subprocess.Popen([sys.executable, "-m", "flows.retrain", "--project-dir", str(repo)], cwd=repo,
                                  env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
                 for log in logs]
        try:
            codes = [p.wait(timeout=900) for p in procs]
        finally:
            for p in procs:
                stop(p)
        outputs = [log.read_text() for log in logs]
        assert codes == [0, 0], "\n\n".join(o[-4000:] for o in outputs)
        assert sum(o.count("Running stage 'train'") for o in outputs) == 1, "the pipeline ran twice"
        assert any("waiting for it" in o for o in outputs), "the second retrain did not wait for the first"
        assert versions(repo) == ["1", "2"]  # one new version, not a duplicate
        al = aliases(repo)
        decision = registry(repo).get_model_version(MODEL, "2").tags["decision"]
        assert al["candidate"] == "2" and al["champion"] == ("2" if decision == "champion" else "1")
        assert json.loads((repo / "metrics/train.json").read_text())["steps"] == 9
        assert_dvc_consistent(repo, env)
    finally:
        if serve is not None:
            stop(serve)
        stop(server)
