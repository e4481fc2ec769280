"""Two clones, one tracking server (PostgreSQL store, --artifacts-destination): clone A runs the tiny
pipeline (`dvc repro`: trains and registers) with only $MLFLOW_TRACKING_URI, a password in it; clone B,
with no local store and no artifacts, synthesizes, loads the pyfunc and serves models:/NAME@champion
(`ganpipe serve`, one copy-synthesis request). The password is in
none of dvc.lock, the logs, the Prefect artifacts, or the MLflow tags and params."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from tests.support.fresh_clone import clean_env, edit_params, fresh_clone, run

pytestmark = [pytest.mark.slow, pytest.mark.network]

SECRET = "s3cr3t-team-pass"
MODEL = "team-two-clones-vocos"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://ganpipe:{SECRET}@")


def mlflow_texts(url: str) -> str:
    """Every experiment tag, run param and tag, registered model and version tag of the server, as text."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    texts = []
    experiments = client.search_experiments()
    texts += [json.dumps([e.name, e.artifact_location, e.tags]) for e in experiments]
    for run_ in client.search_runs([e.experiment_id for e in experiments], max_results=1000):
        texts.append(json.dumps([run_.data.params, run_.data.tags, run_.info.artifact_uri]))
    for model in client.search_registered_models():
        texts.append(json.dumps([model.name, model.tags, model.description]))
        texts += [json.dumps([v.tags, v.source, v.description]) for v in client.search_model_versions(
            f"name = '{model.name}'")]
    return "\n".join(texts)


def prefect_texts(api: str) -> str:
    """The Prefect server's artifacts and flow-run logs, as text."""
    out = []
    for what in ("artifacts", "logs"):
        req = urllib.request.Request(f"{api}/{what}/filter", data=b"{}", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            out.append(resp.read().decode())
    return "\n".join(out)


def test_clone_a_registers_clone_b_synthesizes_and_serves_the_champion(team_server, prefect_env, tmp_path):
    a = fresh_clone(tmp_path / "a")
    edit_params(a, {"registry": {"model_name": MODEL, "export_onnx": False}})
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qam", "team registry"], a)
    env = {**prefect_env, "MLFLOW_TRACKING_URI": with_password(team_server.url)}
    out = run([sys.executable, "-m", "dvc", "repro"], a, env, timeout=1500)
    reg = json.loads((a / "metrics/register.json").read_text())
    assert reg["decision"] == "champion" and reg["model_name"] == MODEL, reg
    assert not (a / ".mlflow").exists()  # nothing local: runs, artifacts and the registry are on the server
    assert list(team_server.artifacts.rglob("generator.pt")), "the server's artifact store holds the model"
    assert "127.0.0.1" not in (a / "dvc.lock").read_text()  # the address stays out of dvc.lock

    for where, text in (("dvc.lock", (a / "dvc.lock").read_text()), ("the logs", out),
                        ("metrics/register.json", (a / "metrics/register.json").read_text()),
                        ("Prefect", prefect_texts(prefect_env["PREFECT_API_URL"])),
                        ("MLflow", mlflow_texts(team_server.url))):
        assert SECRET not in text, f"the password is in {where}"
    assert "ganpipe:***@127.0.0.1" in out  # the register flow names the server, redacted

    b = tmp_path / "b"
    b.mkdir()  # clone B: nothing of A's, no .mlflow/, only the server's address
    env_b = clean_env(MLFLOW_TRACKING_URI=with_password(team_server.url))
    clip = sorted((a / "data/prepared/wavs").rglob("*.wav"))[0]
    run(["ganpipe", "synthesize", "--model", f"models:/{MODEL}@champion", "--wav", str(clip),
         "-o", str(b / "out.wav")], b, env_b)
    audio, rate = sf.read(b / "out.wav")
    assert rate == 22050 and np.isfinite(audio).all() and np.abs(audio).max() > 1e-4

    serve = (f"import mlflow, numpy as np; m = mlflow.pyfunc.load_model('models:/{MODEL}@champion'); "
             "print('shape', np.asarray(m.predict(np.zeros((1, 80, 12), np.float32))).shape)")
    proc = subprocess.run([sys.executable, "-c", serve], cwd=b, env=env_b, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "shape (1, 1, 3072)" in proc.stdout, proc.stderr[-3000:]
    assert not (b / ".mlflow").exists() and not (b / "mlruns").exists()

    (b / "params.yaml").write_text((a / "params.yaml").read_text())  # a clone has the project's params
    served = served_copy_synthesis(b, env_b, clip)
    assert served.size > 0.9 * sf.info(clip).frames and np.isfinite(served).all()
    assert not (b / ".mlflow").exists() and not (b / "mlruns").exists()


def served_copy_synthesis(b, env_b: dict, clip) -> np.ndarray:
    """`ganpipe serve` in clone B (the champion from the server) answers one copy-synthesis request."""
    from ganpipe.client import copy_synthesis
    from tests.support.serve_process import serve_process

    log = b / "serve.log"
    with serve_process(b, env_b, ["--model", f"models:/{MODEL}@champion", "--threads", "1"], log,
                       "ganpipe serve (clone B)") as base:
        audio, rate = copy_synthesis(base, clip)
    assert rate == 22050
    assert SECRET not in log.read_text(), "the password is in the server's log"
    return audio
