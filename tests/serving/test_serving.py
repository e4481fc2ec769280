"""The registered model in use: pyfunc contract, ONNX export, Python API + CLI, REST serving."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ganpipe.mel import MelConfig, MelSpectrogram
from tests.support.registry_project import MODEL, eval_json, make_generator, make_project, mlflow_template

HOP = 256


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A project whose registry holds one tiny vocoder (with its ONNX export) as champion."""
    from ganpipe.model_registry import register_generator

    root = tmp_path_factory.mktemp("serving") / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory), {"export_onnx": True})
    reg = register_generator(make_generator(root / "g.pt", seed=5), eval_json(root / "e.json", mcd=7.0), params, root)
    assert reg.decision == "champion"
    return root, f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"


@pytest.fixture(scope="module")
def model(store):
    import mlflow

    mlflow.set_tracking_uri(store[1])
    return mlflow.pyfunc.load_model(f"models:/{MODEL}@champion")


def lj_mel(path: Path, seconds: float | None = 2.5) -> tuple[np.ndarray, np.ndarray]:
    wav, sr = sf.read(path, dtype="float32")
    assert sr == 22050
    if seconds:
        wav = wav[: int(seconds * sr)]
    with torch.inference_mode():
        return wav, MelSpectrogram(MelConfig())(torch.from_numpy(wav)).numpy()


def test_pyfunc_contract_on_real_speech(model, lj_wavs):
    from mlflow.exceptions import MlflowException

    wav0, mel0 = lj_mel(lj_wavs[0])
    _, mel1 = lj_mel(lj_wavs[1], 1.3)
    frames0, frames1 = mel0.shape[1], mel1.shape[1]
    out = model.predict(mel0[None])
    assert out.shape == (1, 1, frames0 * HOP) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.sqrt(np.mean(out ** 2)) > 1e-4

    # a padded batch of different lengths: each item as if alone, silence beyond its length
    batch = np.full((2, 80, frames0), np.log(1e-5), np.float32)
    batch[0], batch[1, :, :frames1] = mel0, mel1
    both = model.predict(batch, params={"lengths": [frames0, frames1]})
    alone1 = model.predict(mel1[None])
    assert both.shape == (2, 1, frames0 * HOP)
    np.testing.assert_allclose(both[0], out[0], atol=1e-5)
    np.testing.assert_allclose(both[1, :, : frames1 * HOP], alone1[0], atol=1e-5)
    assert not both[1, :, frames1 * HOP:].any()

    # copy-synthesis: waveform in, waveform out = the mel path on the model's own mel of it
    copy = model.predict(wav0[None, None], params={"input_type": "waveform"})
    assert copy.shape == (1, 1, (len(wav0) // HOP) * HOP)
    np.testing.assert_allclose(copy, out, atol=1e-5)

    # the ONNX export inside the model gives the same audio
    onnx = model.predict(mel0[None], params={"backend": "onnx"})
    assert np.abs(onnx - out).max() < 1e-4

    # bad input: a clear error, not audio
    for bad, params, message in [
        (np.zeros((1, 64, 50), np.float32), None, r"64 bins .* n_mels=80"),
        (np.full((1, 80, 5), np.nan, np.float32), None, "NaN"),
        (mel0[None], {"input_type": "spectrogram"}, "input_type"),
        (mel0[None], {"speaker": "LJ"}, "not speaker-conditioned"),
        (mel0[None], {"lengths": [1, 2]}, "lengths"),
        (np.zeros((1, 2, 5000), np.float32), {"input_type": "waveform"}, "mono"),
    ]:
        with pytest.raises(MlflowException, match=message):
            model.predict(bad, params=params)


def test_meanvar_models_normalise_their_input(tmp_path):
    """With normalize: meanvar the model takes the raw log-mel and applies its own statistics."""
    from ganpipe.generator_io import load_generator
    from ganpipe.serving.cores import VocoderCore

    cfg = MelConfig(fmin=80.0, fmax=7600.0, log_base="10", clamp=1e-10, normalize="meanvar")
    rng = np.random.default_rng(0)
    stats = {"mean": rng.normal(-3, 1, 80).astype(np.float32), "std": rng.uniform(0.5, 2, 80).astype(np.float32)}
    loaded = load_generator(make_generator(tmp_path / "g.pt", seed=2, mel=cfg, stats=stats))
    mel = rng.normal(-4, 1, (1, 80, 12)).astype(np.float32)
    got = VocoderCore(loaded).predict(mel)
    normalised = (mel - stats["mean"][:, None]) / stats["std"][:, None]
    with torch.inference_mode():
        want = loaded.generator(torch.from_numpy(normalised)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_synthesis_api_and_cli(store, tmp_path, lj_wavs):
    from typer.testing import CliRunner

    from ganpipe.cli import app
    from ganpipe.synthesis import MelConfigMismatch, SynthesisError, load_vocoder

    root, uri = store
    voc = load_vocoder(f"models:/{MODEL}@champion", tracking_uri=uri)
    assert voc.mel_config == MelConfig() and voc.sample_rate == 22050
    wav, mel = lj_mel(lj_wavs[2], 2.0)
    np.testing.assert_allclose(voc.compute_mel(wav, 22050), mel, atol=1e-5)
    audio = voc.mel_to_audio(mel, mel_config=MelConfig())
    assert audio.shape == (mel.shape[1] * HOP,)
    theirs = MelConfig(hop_length=200, fmax=7600.0)
    with pytest.raises(MelConfigMismatch) as err:
        voc.mel_to_audio(mel, mel_config=theirs)
    assert set(err.value.differences) == {"hop_length", "fmax"}
    assert "hop_length: yours 200, model 256" in str(err.value)
    with pytest.raises(SynthesisError, match="n_mels=80"):
        voc.mel_to_audio(mel[:64])
    with pytest.raises(SynthesisError, match="sample_rate=22050"):
        voc.copy_synthesis(wav[::2], 11025)

    runner = CliRunner()
    base = ["synthesize", "--model", f"models:/{MODEL}@champion", "--tracking-uri", uri]
    np.save(tmp_path / "x.npy", mel)
    res = runner.invoke(app, [*base, "--mel", str(tmp_path / "x.npy"), "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 0, res.output
    out, sr = sf.read(tmp_path / "out.wav")
    assert sr == 22050 and len(out) == mel.shape[1] * HOP and np.abs(out).max() > 0
    assert json.loads(res.output.strip().splitlines()[-1])["samples"] == len(out)

    (tmp_path / "my_mel.json").write_text(theirs.to_json())
    res = runner.invoke(app, [*base, "--mel", str(tmp_path / "x.npy"), "--mel-config", str(tmp_path / "my_mel.json"),
                              "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "hop_length" in res.output and "fmax" in res.output
    np.save(tmp_path / "x64.npy", mel[:64])
    res = runner.invoke(app, [*base, "--mel", str(tmp_path / "x64.npy"), "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "n_mels=80" in res.output
    assert not (tmp_path / "bad.wav").exists()

    res = runner.invoke(app, [*base, "--wav", str(lj_wavs[2]), "-o", str(tmp_path / "copy.wav")])
    assert res.exit_code == 0, res.output
    src = sf.info(lj_wavs[2]).frames
    assert sf.info(tmp_path / "copy.wav").frames == (src // HOP) * HOP
    sf.write(tmp_path / "16k.wav", wav[: 16000], 16000)
    res = runner.invoke(app, [*base, "--wav", str(tmp_path / "16k.wav"), "-o", str(tmp_path / "c16.wav")])
    assert res.exit_code == 2 and "sample_rate=22050" in res.output
    res = runner.invoke(app, [*base, "--wav", str(tmp_path / "16k.wav"), "--resample", "-o", str(tmp_path / "c16.wav")])
    assert res.exit_code == 0 and sf.info(tmp_path / "c16.wav").samplerate == 22050
    res = runner.invoke(app, ["synthesize", "--model", f"models:/{MODEL}@nobody", "--tracking-uri", uri,
                              "--mel", str(tmp_path / "x.npy"), "-o", str(tmp_path / "n.wav")])
    assert res.exit_code == 2 and "nobody" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.slow
@pytest.mark.network
def test_rest_serving(store, model, tmp_path, lj_wavs):
    root, uri = store
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL}@champion",
                             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240  # start-up allowance on a loaded machine, not a check
        while True:
            assert proc.poll() is None, f"server exited:\n{(tmp_path / 'serve.log').read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)

        wav, mel = lj_mel(lj_wavs[3])
        status, body = _post(f"{base}/invocations", json.dumps({"inputs": mel[None].tolist()}).encode())
        assert status == 200, body
        audio = np.asarray(body["predictions"], dtype=np.float32)
        assert audio.shape == (1, 1, mel.shape[1] * HOP)
        assert np.isfinite(audio).all() and np.sqrt(np.mean(audio ** 2)) > 1e-4
        np.testing.assert_allclose(audio, model.predict(mel[None]), atol=1e-4)

        status, body = _post(f"{base}/invocations", json.dumps(
            {"inputs": wav[None, None, :22050].tolist(), "params": {"input_type": "waveform"}}).encode())
        assert status == 200 and np.asarray(body["predictions"]).shape == (1, 1, (22050 // HOP) * HOP)

        for request, message in [
            (json.dumps({"inputs": mel[None, :64].tolist()}).encode(), "n_mels=80"),
            (json.dumps({"inputs": mel.tolist()}).encode(), "shape"),
            (json.dumps({"inputs": mel[None].tolist(), "params": {"input_type": "spectrogram"}}).encode(),
             "input_type"),
            (b"{not json", "JSON"),
        ]:
            status, body = _post(f"{base}/invocations", request)
            assert 400 <= status < 500, (status, body)
            assert message in body.get("message", ""), body
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker, started above
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
