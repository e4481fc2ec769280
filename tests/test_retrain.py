"""Retrain flow: promote only if better, failures (retried or not) leave the champion alone,
fine-tuning from the champion, two retrains at once, and the cron deployment on a real Prefect server.

The pipeline command is a tiny stand-in for `dvc repro` (the retrain flow's ``command`` parameter):
it installs a prepared generator file as models/generator.pt with its metrics/eval.json.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from tests.test_registry import MODEL, aliases, client_for, make_generator, make_project, mlflow_template, version_ids

INSTALL = """\
import json, os, shutil, sys, time
from pathlib import Path
src, mcd, flags = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
with open("commands.log", "a") as log:
    log.write(f"start {src}\\n")
counter = Path(f"attempts-{Path(src).stem}")
attempt = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(attempt))
if "--fail" in flags:
    print("boom: the corpus is corrupt")
    sys.exit(3)
if "--flaky" in flags and attempt == 1:
    print("ERROR: Unable to acquire lock. Most likely another DVC process is running or was terminated abruptly.")
    sys.exit(1)
if "--slow" in flags:
    time.sleep(1.0)
Path("fine_tune_from.txt").write_text(os.environ.get("GANPIPE_FINE_TUNE_FROM", ""))
Path("models").mkdir(exist_ok=True)
Path("metrics").mkdir(exist_ok=True)
shutil.copy(src, "models/generator.pt")
Path("metrics/eval.json").write_text(json.dumps({"kind": "vocoder", "variant": "hifigan_v3", "step": 7, "mcd": mcd}))
with open("commands.log", "a") as log:
    log.write(f"end {src}\\n")
"""


def project(root: Path, template: Path, seeds: list[int]) -> Path:
    make_project(root, template, {"retries": 2, "retry_delay_seconds": 0})
    (root / "install.py").write_text(INSTALL)
    for s in seeds:
        make_generator(root / "gens" / f"g{s}.pt", seed=s)
    return root


def install(gen: str, mcd: float, *flags: str) -> list[str]:
    return [sys.executable, "install.py", f"gens/{gen}.pt", str(mcd), *flags]


def attempts(root: Path, gen: str) -> int:
    return int((root / f"attempts-{gen}").read_text())


def test_retrain_promotes_only_if_better_and_failures_keep_the_champion(tmp_path, tmp_path_factory,
                                                                         prefect_harness, monkeypatch):
    from flows.retrain import CommandError, retrain_flow
    from ganpipe.generator_io import load_weights
    from ganpipe.registry import file_sha256

    root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [1, 2])
    first = retrain_flow(project_dir=str(root), command=install("g1", 8.0), push=False)
    assert first["status"] == "ok" and (first["champion_before"], first["champion_after"]) == (None, "1")
    assert aliases(root) == {"candidate": "1", "champion": "1"}

    # a failing pipeline: not retried (not transient), reported, nothing registered, champion kept
    with pytest.raises(CommandError, match=r"exit code 3[\s\S]*boom: the corpus is corrupt"):
        retrain_flow(project_dir=str(root), command=install("g2", 1.0, "--fail"), push=False)
    assert attempts(root, "g2") == 1
    assert version_ids(root) == ["1"] and aliases(root) == {"candidate": "1", "champion": "1"}

    # a transient failure (DVC's lock held elsewhere) is retried; fine-tuning starts from the
    # champion; the worse model becomes candidate only
    (root / "attempts-g2").unlink()
    second = retrain_flow(project_dir=str(root), command=install("g2", 9.0, "--flaky"), push=False,
                          fine_tune_from_champion=True)
    assert attempts(root, "g2") == 2
    assert (root / "fine_tune_from.txt").read_text() == f"models:/{MODEL}/1" == second["fine_tune_from"]
    assert second["registration"]["decision"] == "candidate" and second["champion_after"] == "1"
    assert second["registration"]["generator_sha256"] == file_sha256(root / "gens" / "g2.pt")
    assert aliases(root) == {"candidate": "2", "champion": "1"}

    # train.fine_tune_from accepts the registry URI: the champion's generator weights
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    weights = load_weights(f"models:/{MODEL}@champion")
    saved = torch.load(root / "gens" / "g1.pt", weights_only=True)["state_dict"]
    assert weights.keys() == saved.keys() and all(torch.equal(weights[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match="train.fine_tune_from=models:/nope@champion"):
        load_weights("models:/nope@champion")


def test_two_retrains_at_once_take_turns(tmp_path, tmp_path_factory, prefect_harness):
    """Same project, started together: the pipeline+registration of one never interleaves with the
    other's (each registers the generator its own pipeline produced), versions/aliases consistent."""
    from flows.retrain import retrain_flow
    from ganpipe.registry import file_sha256

    root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [3, 4])
    jobs = {"g3": 6.0, "g4": 9.0}
    start = threading.Barrier(len(jobs))
    results, errors = {}, []

    def work(gen: str) -> None:
        try:
            start.wait()
            results[gen] = retrain_flow(project_dir=str(root), command=install(gen, jobs[gen], "--slow"), push=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(g,)) for g in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    log = (root / "commands.log").read_text().split()
    pairs = [(log[i], log[i + 1], log[i + 2], log[i + 3]) for i in range(0, len(log), 4)]
    assert len(pairs) == 2 and all(p[0] == "start" and p[2] == "end" and p[1] == p[3] for p in pairs), log
    for gen, summary in results.items():  # each registered what its own command installed
        assert summary["registration"]["generator_sha256"] == file_sha256(root / "gens" / f"{gen}.pt")
    assert version_ids(root) == ["1", "2"]
    assert aliases(root) == {"candidate": "2", "champion": results["g3"]["registration"]["version"]}


# ------------------------------------------------------------------------------------------------
# the scheduled deployment on a real Prefect server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process group this test started."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_until(check, what: str, logs: list[Path], procs: list[subprocess.Popen], allowance: float = 240.0):
    deadline = time.monotonic() + allowance  # start-up allowance on a loaded machine, not a check
    while True:
        for proc, log in zip(procs, logs):
            assert proc.poll() is None, f"{what}: a process exited:\n{log.read_text()[-3000:]}"
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what}: gave up waiting\n" + "\n".join(
            log.read_text()[-2000:] for log in logs)
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.network
def test_scheduled_deployment_runs_a_retrain(tmp_path, tmp_path_factory):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ganpipe.config import load_params
    from ganpipe.registry import register_generator

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=api, PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    server_log, serve_log = tmp_path / "server.log", tmp_path / "serve.log"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], cwd=tmp_path, env=env, stdout=server_log.open("w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    serve = None
    try:
        # while the server starts: a project whose registry already has a champion (mcd 7.0)
        root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [5, 6])
        champion = register_generator(root / "gens" / "g5.pt", {"mcd": 7.0}, load_params(root / "params.yaml"), root)
        assert champion.version == "1"

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=5) as resp:
                    return resp.status == 200
            except OSError:
                return False

        _wait_until(healthy, "prefect server", [server_log], [server])
        serve = subprocess.Popen([sys.executable, "-m", "ganpipe.cli", "schedule", "--cron", "0 3 * * 0",
                                  "--no-push", "--command", f"{sys.executable} install.py gens/g6.pt 8.0"],
                                 cwd=root, env=env, stdout=serve_log.open("w"), stderr=subprocess.STDOUT,
                                 start_new_session=True)
        with temporary_settings({PREFECT_API_URL: api}):
            async def deployment():
                async with get_client() as client:
                    try:
                        return await client.read_deployment_by_name("retrain/ganpipe-retrain")
                    except Exception:  # noqa: BLE001 - not created yet
                        return None

            dep = _wait_until(lambda: asyncio.run(deployment()), "deployment", [server_log, serve_log], [server, serve])
            assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * 0"]
            assert dep.schedules[0].active and dep.schedules[0].schedule.timezone == "UTC"
            assert dep.parameters["project_dir"] == str(root.resolve()) and dep.parameters["push"] is False

            run = run_deployment("retrain/ganpipe-retrain", timeout=300)
            assert run.state.is_completed(), (run.state, serve_log.read_text()[-3000:])
        assert version_ids(root) == ["1", "2"]
        assert aliases(root) == {"candidate": "2", "champion": "1"}  # worse (8.0 > 7.0): candidate only
        assert client_for(root).get_model_version(MODEL, "2").tags["decision"] == "candidate"
    finally:
        if serve is not None:
            _stop(serve)
        _stop(server)


def test_schedule_needs_a_valid_cron_and_a_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.retrain import serve

    with pytest.raises(SystemExit, match="invalid schedule.*'every sunday'"):
        serve("x", "every sunday", "UTC", {})
    with pytest.raises(SystemExit, match="invalid schedule.*Mars/Base"):
        serve("x", "0 3 * * 0", "Mars/Base", {})
    with temporary_settings({PREFECT_API_URL: None}):
        with pytest.raises(SystemExit, match="prefect server start"):
            serve("x", "0 3 * * 0", "UTC", {})
