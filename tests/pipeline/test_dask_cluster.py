"""prepare and features on an existing Dask cluster: a real ``dask scheduler`` and ``dask worker``
started in another folder than the project (jobs carry absolute paths), outputs equal to a local run.

The project is the tiny demo corpus (2 speakers x 3 utterances) run as `dvc repro` runs the stages:
from the project folder, with params.yaml's relative paths.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, write_params
from tests.support.fresh_clone import clean_env
from tests.support.prefect_server import free_port, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.network]

TINY_DEMO = {"dataset": {"demo": {"n_speakers": 2, "utterances_per_speaker": 3}}}


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A scheduler and one worker (one thread) on 127.0.0.1, both started in a folder that is not the
    project; the worker imports ganpipe from this checkout (PYTHONPATH), as an installed copy would."""
    from distributed import Client

    elsewhere = tmp_path_factory.mktemp("dask-elsewhere")
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = [sys.executable, "-m", "dask"]  # = the `dask` command
    env = clean_env(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    logs = [elsewhere / "scheduler.log", elsewhere / "worker.log"]
    procs = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], cwd=elsewhere, env=env, stdout=logs[0].open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)]
    try:
        procs.append(subprocess.Popen([*dask, "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                                       "--no-dashboard", "--local-directory", str(elsewhere / "spill")],
                                      cwd=elsewhere, env=env, stdout=logs[1].open("w"),
                                      stderr=subprocess.STDOUT, start_new_session=True))

        def one_worker() -> bool:
            try:
                with Client(address, timeout=5) as client:
                    return len(client.scheduler_info()["workers"]) == 1
            except OSError:
                return False

        wait_until(one_worker, "dask scheduler + worker", logs, procs)
        yield address, elsewhere
    finally:
        for proc in reversed(procs):
            stop(proc)


def tasks_done_on_worker(address: str) -> int:
    """How many tasks the cluster's worker has run to completion (from its transition log)."""
    from distributed import Client

    def done(dask_worker) -> int:
        return len({entry[0] for entry in dask_worker.state.log if len(entry) > 2 and entry[2] == "memory"})

    with Client(address, timeout=10) as client:
        return sum(client.run(done).values())


def run_stages(project: Path, monkeypatch: pytest.MonkeyPatch, features: dict) -> None:
    """download -> prepare -> features in ``project``, as `dvc repro` runs them (relative paths)."""
    from flows.download import download_flow
    from flows.features import features_flow
    from flows.prepare import prepare_flow

    project.mkdir()
    write_params(project / "params.yaml", {**TINY_DEMO, "features": features})
    monkeypatch.chdir(project)
    download_flow(params_path="params.yaml")
    prepare_flow(params_path="params.yaml")
    features_flow(params_path="params.yaml")


def assert_same_outputs(a: Path, b: Path) -> None:
    for rel in ("data/prepared/manifest.csv", "data/prepared/skipped.csv", "data/features/index.csv",
                "metrics/prepare.json", "metrics/features.json"):
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    manifest = pd.read_csv(a / "data/prepared/manifest.csv")
    assert len(manifest) == 6 and not manifest["source_path"].str.startswith("/").any()
    for rel in manifest["path"]:
        assert (a / "data/prepared" / rel).read_bytes() == (b / "data/prepared" / rel).read_bytes(), rel
    for rel in pd.read_csv(a / "data/features/index.csv")["mel"]:
        np.testing.assert_array_equal(np.load(a / "data/features" / rel), np.load(b / "data/features" / rel))
    sa, sb = np.load(a / "data/features/stats.npz"), np.load(b / "data/features/stats.npz")
    for key in sa.files:
        np.testing.assert_allclose(sa[key], sb[key], rtol=1e-6, err_msg=key)


def test_prepare_and_features_on_a_dask_cluster_started_elsewhere(tmp_path, dask_cluster, prefect_harness,
                                                                   monkeypatch):
    address, elsewhere = dask_cluster
    run_stages(tmp_path / "on-dask", monkeypatch,
               {"task_runner": "dask", "dask_address": address, "workers": 1, "shard_size": 2})
    assert tasks_done_on_worker(address) >= 6, "the 3 + 3 shards did not run on the cluster's worker"
    assert not (elsewhere / "data").exists(), "the worker wrote relative to its own folder"
    run_stages(tmp_path / "local", monkeypatch, {"task_runner": "threads", "workers": 1, "shard_size": 2})
    assert_same_outputs(tmp_path / "on-dask", tmp_path / "local")
    shutil.rmtree(tmp_path / "local")  # 2 x the demo corpus: keep the temp folder small
