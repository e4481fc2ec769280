"""The retrain on a Prefect process work pool: `ganpipe schedule --pool NAME` deploys it (creating the
pool) and returns; a real `prefect worker start --pool NAME` process, started in another folder,
picks up a triggered run, which completes and registers a version.

The pipeline is a stand-in for `dvc repro` (the retrain's ``--command``): it installs a prepared tiny
generator as models/generator.pt with its metrics/eval.json, so the run costs what the worker, the
flow and the registration cost.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.fresh_clone import clean_env
from tests.support.prefect_server import start_server, stop, wait_healthy, wait_until
from tests.support.registry_project import MODEL, aliases, make_generator, make_project, mlflow_template, version_ids

pytestmark = [pytest.mark.slow, pytest.mark.network]

POOL = "tiny-pool"
INSTALL = """\
import json, shutil, sys
from pathlib import Path
Path("models").mkdir(exist_ok=True)
Path("metrics").mkdir(exist_ok=True)
shutil.copy(sys.argv[1], "models/generator.pt")
Path("metrics/eval.json").write_text(json.dumps({"kind": "vocoder", "variant": "hifigan_v3", "step": 7, "mcd": 8.0}))
"""


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """One real `prefect server start` for the module; yields the environment that points at it."""
    workdir = tmp_path_factory.mktemp("prefect-server")
    env = clean_env(PYTHONPATH=str(REPO_ROOT))  # the worker's flow runs import this checkout's ganpipe
    server, api, log = start_server(workdir, env)
    try:
        wait_healthy(server, api, log)
        yield env, api, log, server
    finally:
        stop(server)


def tiny_project(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    make_project(root, mlflow_template(tmp_path_factory), {"model_name": MODEL})
    (root / "install.py").write_text(INSTALL)
    make_generator(root / "gens" / "g1.pt", seed=1)
    return root


def test_a_worker_runs_the_deployed_retrain(tmp_path, tmp_path_factory, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    env, api, server_log, server = prefect_server
    project = tiny_project(tmp_path / "proj", tmp_path_factory)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "ganpipe.cli", "schedule", "--pool", POOL, "--cron", "0 3 * * 0",
                    "--no-push", "--command", f"{sys.executable} install.py gens/g1.pt"],
                   cwd=project, env=env, check=True, timeout=300)
    print(f"deployed in {time.monotonic() - started:.1f} s")

    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        assert client.read_work_pool(POOL).type == "process"
        dep = client.read_deployment_by_name("retrain/ganpipe-retrain")
    assert dep.work_pool_name == POOL and [s.schedule.cron for s in dep.schedules] == ["0 3 * * 0"]
    assert dep.parameters["project_dir"] == str(project.resolve()) and dep.parameters["push"] is False
    assert dep.entrypoint == "flows/retrain.py:retrain_flow"

    elsewhere = tmp_path / "worker-home"  # a worker runs from anywhere: the deployment names the checkout
    elsewhere.mkdir()
    worker_log = tmp_path / "worker.log"
    worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL],
                              cwd=elsewhere, env={**env, "PREFECT_WORKER_QUERY_SECONDS": "2"},
                              stdout=worker_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with temporary_settings({PREFECT_API_URL: api}):
            def worker_online():
                with get_client(sync_client=True) as client:
                    return any(w.status == "ONLINE" for w in client.read_workers_for_work_pool(POOL))

            wait_until(worker_online, "prefect worker", [server_log, worker_log], [server, worker])
            started = time.monotonic()
            run = run_deployment("retrain/ganpipe-retrain", timeout=600)
            print(f"triggered run: {run.state.name} in {time.monotonic() - started:.1f} s")
        log = worker_log.read_text()
        assert run.state.is_completed(), (run.state, log[-4000:])
    finally:
        stop(worker)
    assert run.work_queue_name and run.work_pool_name == POOL
    assert version_ids(project) == ["1"] and aliases(project)["candidate"] == "1"
    assert (project / "models" / "generator.pt").is_file() and not (elsewhere / "models").exists()


def test_a_pool_of_another_type_is_refused(prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.retrain import ensure_process_pool

    with temporary_settings({PREFECT_API_URL: prefect_server[1]}):
        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name="k8s-pool", type="kubernetes"))
        with pytest.raises(SystemExit, match="'k8s-pool' is of type 'kubernetes'.*'process' pool"):
            ensure_process_pool("k8s-pool")
        ensure_process_pool("new-pool")  # created
        ensure_process_pool("new-pool")  # found
        with get_client(sync_client=True) as client:
            assert client.read_work_pool("new-pool").type == "process"
