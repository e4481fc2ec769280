"""``ganpipe serve`` as a real process on 127.0.0.1 (one per module), following ``models:/M@champion``
of a project whose registry holds three tiny HiFi-GAN V3 versions: vocode, copy-synthesis, streaming,
the refusals (401 / 413 / 422 / 503), the metrics, the clients, the hash check and the alias switch
under load."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch

from ganpipe.mel import MelConfig, MelSpectrogram
from tests.support.prefect_server import wait_until
from tests.support.registry_project import MODEL, client_for, eval_json, make_generator, make_project, mlflow_template
from tests.support.serve_process import serve_process

pytestmark = pytest.mark.network
TOKEN = "test-token-not-a-secret"
TOKEN_ENV = "GANPIPE_TEST_SERVE_KEY"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOP = 256


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Version 1 the champion; versions 2 and 3 registered (worse metric: not promoted)."""
    from ganpipe.model_registry import register_generator

    root = tmp_path_factory.mktemp("serve-http") / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    for seed, mcd in [(5, 7.0), (6, 9.0), (7, 9.5)]:
        register_generator(make_generator(root / f"g{seed}.pt", seed=seed, step=seed),
                           eval_json(root / f"e{seed}.json", step=seed, mcd=mcd), params, root)
    return root


@pytest.fixture(scope="module")
def server(project: Path, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    env = {**os.environ, TOKEN_ENV: TOKEN, "MLFLOW_TRACKING_URI": f"sqlite:///{project / '.mlflow' / 'mlflow.db'}"}
    args = ["--model", f"models:/{MODEL}@champion", "--poll-seconds", "0.2", "--workers", "1", "--queue", "1",
            "--max-request-mb", "2", "--threads", "1", "--api-key-env", TOKEN_ENV]
    with serve_process(project, env, args, log) as base:
        yield base, log


def speech_mel(path: Path, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    wav, sr = sf.read(path, dtype="float32")
    wav = wav[: int(seconds * sr)]
    with torch.inference_mode():
        return wav, MelSpectrogram(MelConfig())(torch.from_numpy(wav)).numpy()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array.astype(np.float32))
    return buffer.getvalue()


def post(base: str, path: str, body: bytes, ctype: str = "application/x-npy", headers: dict | None = None,
         **params) -> httpx.Response:
    return httpx.post(f"{base}{path}", content=body, params=params, timeout=120,
                      headers={"Content-Type": ctype, **AUTH, **(headers or {})})


def audio_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    assert rate == 22050
    return audio


def served_version(base: str) -> str:
    return httpx.get(f"{base}/v1/model", headers=AUTH, timeout=30).json()["version"]


def test_vocode_and_copy_synthesis(server, lj_wavs):
    base, _ = server
    wav, mel = speech_mel(lj_wavs[0], 2.0)
    answer = post(base, "/v1/vocode", npy(mel))
    audio = audio_of(answer)
    assert audio.shape == (mel.shape[1] * HOP,) and np.sqrt(np.mean(audio ** 2)) > 1e-4
    assert answer.headers["x-model-version"] == "1" and len(answer.headers["x-generator-sha256"]) == 64
    assert "x-ganpipe-warning" not in answer.headers
    as_json = post(base, "/v1/vocode", json.dumps({"mel": mel.tolist(), "format": "float32"}).encode(),
                   "application/json")
    assert np.abs(audio_of(as_json) - audio).max() <= 1.5 / 32767  # pcm16 vs float32 of the same audio

    buffer = io.BytesIO()
    sf.write(buffer, wav, 22050, format="WAV", subtype="FLOAT")
    copied = audio_of(post(base, "/v1/copy-synthesis", buffer.getvalue(), "audio/wav"))
    assert copied.shape == ((len(wav) // HOP) * HOP,)
    slow = io.BytesIO()
    sf.write(slow, wav[::2], 11025, format="WAV")
    refused = post(base, "/v1/copy-synthesis", slow.getvalue(), "audio/wav")
    assert refused.status_code == 422 and "--resample" in refused.json()["detail"]
    assert audio_of(post(base, "/v1/copy-synthesis", slow.getvalue(), "audio/wav", resample="true")).size > 0
    refused = post(base, "/v1/generate", b'{"n": 2}', "application/json")
    assert refused.status_code == 422 and "/v1/vocode" in refused.json()["detail"]


def test_streamed_answer_equals_the_whole(server, lj_wavs):
    base, _ = server
    _, mel = speech_mel(lj_wavs[1], 4.0)
    whole = audio_of(post(base, "/v1/vocode", npy(mel), format="float32"))
    with httpx.stream("POST", f"{base}/v1/vocode", content=npy(mel), params={"stream": "true", "format": "float32"},
                      headers={"Content-Type": "application/x-npy", **AUTH}, timeout=120) as response:
        assert response.status_code == 200 and response.headers.get("transfer-encoding") == "chunked"
        chunks = list(response.iter_bytes())
    print(f"{len(chunks)} chunks received")
    streamed, _ = sf.read(io.BytesIO(b"".join(chunks)), dtype="float32")
    assert streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() <= 1e-4
    model = httpx.get(f"{base}/v1/model", headers=AUTH).json()
    assert model["streaming"]["overlap_frames"] > model["streaming"]["left_frames"] >= 1


def test_refusals_name_the_problem(server, lj_wavs):
    base, _ = server
    _, mel = speech_mel(lj_wavs[2], 1.0)
    assert httpx.post(f"{base}/v1/vocode", content=npy(mel)).status_code == 401
    wrong = post(base, "/v1/vocode", npy(mel), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{base}/healthz").status_code == 200  # operations stay open

    big = post(base, "/v1/vocode", b"\0" * (3 * 1024 * 1024))
    assert big.status_code == 413 and "max_request_mb" in big.json()["detail"]
    for body, params, needle in [
        (npy(mel[:64]), {}, "n_mels=80"),
        (npy(mel[:, :0]), {}, "too short"),
        (npy(np.full((80, 20), np.nan)), {}, "NaN"),
        (b"not an array", {}, ".npy"),
        (npy(mel), {"mel_config": json.dumps({"hop_length": 200, "fmax": 11025})}, "hop_length"),
        (npy(mel), {"format": "mp3"}, "format"),
    ]:
        answer = post(base, "/v1/vocode", body, **params)
        assert answer.status_code == 422 and needle in answer.json()["detail"], (needle, answer.text)
    mismatch = post(base, "/v1/vocode", npy(mel), mel_config=json.dumps({"hop_length": 200, "fmax": 11025}))
    assert mismatch.json()["parameters"] == ["fmax", "hop_length"]
    other_kind = post(base, "/v1/vocode", npy(mel / np.log(10)))  # a log10 mel: audio, with a warning
    assert other_kind.status_code == 200 and "log" in other_kind.headers["x-ganpipe-warning"]


def test_full_queue_answers_503_with_retry_after(server, lj_wavs):
    """workers 1 + queue 1: two uploads left half-sent hold both places; the next request is refused."""
    base, _ = server
    host, port = base.removeprefix("http://").split(":")
    _, mel = speech_mel(lj_wavs[2], 1.0)
    body = npy(mel)
    held = []
    try:
        for _ in range(2):
            sock = socket.create_connection((host, int(port)))
            sock.sendall((f"POST /v1/vocode HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-npy\r\n"
                          f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                         + body[:100])
            held.append(sock)
        metric = "ganpipe_serve_in_flight 2.0"
        wait_until(lambda: metric in httpx.get(f"{base}/metrics").text, "two held uploads admitted", [], [], 60)
        busy = post(base, "/v1/vocode", body)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1", busy.text
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: post(base, "/v1/vocode", body).status_code == 200, "places freed", [], [], 60)


def test_metrics_and_clients(server, lj_wavs, tmp_path):
    from typer.testing import CliRunner

    from ganpipe.cli import app
    from ganpipe.client import ServerError, vocode_answer

    base, log = server
    _, mel = speech_mel(lj_wavs[3], 1.5)
    answer = vocode_answer(base, mel, token=TOKEN, stream=True)
    assert answer.audio.shape == (mel.shape[1] * HOP,) and answer.version == "1"
    with pytest.raises(ServerError) as refused:
        vocode_answer(base, mel[:40], token=TOKEN)
    assert refused.value.status == 422 and "n_mels" in refused.value.message

    np.save(tmp_path / "x.npy", mel)
    result = CliRunner().invoke(app, ["synthesize", "--server", base, "--mel", str(tmp_path / "x.npy"),
                                      "-o", str(tmp_path / "x.wav")], env={"GANPIPE_SERVE_API_KEY": TOKEN})
    assert result.exit_code == 0, result.output
    assert sf.info(tmp_path / "x.wav").frames == mel.shape[1] * HOP
    result = CliRunner().invoke(app, ["synthesize", "--server", base, "--mel", str(tmp_path / "x.npy"),
                                      "-o", str(tmp_path / "y.wav")], env={"GANPIPE_SERVE_API_KEY": "wrong"})
    assert result.exit_code == 2 and "401" in result.output

    text = httpx.get(f"{base}/metrics").text
    for name in ("ganpipe_serve_request_seconds_bucket", "ganpipe_serve_time_to_first_audio_seconds_bucket",
                 "ganpipe_serve_real_time_factor_bucket", 'ganpipe_serve_model_info{generator_sha256="'):
        assert name in text, name
    assert 'version="1"' in text
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith('{"ts"')]
    assert any(x["path"] == "/v1/vocode" and x["status"] == 200 and x["model_version"] == "1" for x in lines)
    assert TOKEN not in log.read_text()


@pytest.mark.slow
def test_refuses_a_version_whose_generator_hash_does_not_match(server, project):
    """Version 3's hash tag says another generator: the server keeps serving, says why, and takes
    version 3 once the tag is right."""
    base, log = server
    client = client_for(project)
    before = served_version(base)
    right = client.get_model_version(MODEL, "3").tags["generator_sha256"]
    client.set_model_version_tag(MODEL, "3", "generator_sha256", "0" * 64)
    client.set_registered_model_alias(MODEL, "champion", "3")
    try:
        def refused() -> str | None:
            return httpx.get(f"{base}/v1/model", headers=AUTH).json()["following"]["last_error"]
        error = wait_until(refused, "the refusal", [log], [])
        assert "generator_sha256" in error and "version 3" in error
        assert served_version(base) == before
        assert "model_load_failed" in log.read_text()
    finally:
        client.set_model_version_tag(MODEL, "3", "generator_sha256", right)
    wait_until(lambda: served_version(base) == "3", "version 3 once its tag is right", [log], [])


@pytest.mark.slow
def test_alias_switch_under_load_fails_no_request(server, project, lj_wavs):
    """A client loop of >= 100 requests while the champion moves: every answer 200, the answers from
    the old version until the switch and from the new one after it (by the version header); a stream
    begun before the switch ends on the model it began with."""
    base, log = server
    client = client_for(project)
    old = served_version(base)
    new = "2"
    assert old != new
    _, mel = speech_mel(lj_wavs[4], 0.5)
    _, long_mel = speech_mel(lj_wavs[5], 6.0)
    old_long = audio_of(post(base, "/v1/vocode", npy(long_mel), format="float32"))
    body = npy(mel)
    seen: list[tuple[int, str | None]] = []
    stop_loop = threading.Event()

    def loop() -> None:
        with httpx.Client(headers={"Content-Type": "application/x-npy", **AUTH}, timeout=60) as http:
            while not stop_loop.is_set():
                try:
                    r = http.post(f"{base}/v1/vocode", content=body)
                    seen.append((r.status_code, r.headers.get("x-model-version")))
                except httpx.HTTPError as exc:
                    seen.append((0, repr(exc)))

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    stream = httpx.stream("POST", f"{base}/v1/vocode", content=npy(long_mel),
                          params={"stream": "true", "format": "float32"},
                          headers={"Content-Type": "application/x-npy", **AUTH}, timeout=120)
    try:
        response = stream.__enter__()
        chunks = response.iter_bytes()
        received = [next(chunks)]
        wait_until(lambda: len(seen) >= 50, "50 answers before the switch", [log], [])
        switched_at = time.monotonic()
        client.set_registered_model_alias(MODEL, "champion", new)
        wait_until(lambda: served_version(base) == new, "the switch", [log], [])
        print(f"switched {time.monotonic() - switched_at:.2f} s after the alias moved")
        count = len(seen)
        wait_until(lambda: len(seen) >= max(100, count + 30), "answers after the switch", [log], [])
        received.extend(chunks)
        assert response.headers["x-model-version"] == old
    finally:
        stop_loop.set()
        worker.join(timeout=60)
        stream.__exit__(None, None, None)
    streamed, _ = sf.read(io.BytesIO(b"".join(received)), dtype="float32")
    assert np.abs(streamed - old_long).max() <= 1e-4  # the whole stream from the old model

    statuses = [s for s, _ in seen]
    versions = [v for _, v in seen]
    print(f"{len(seen)} requests: {versions.count(old)} from version {old}, {versions.count(new)} from {new}")
    assert len(seen) >= 100 and statuses.count(200) == len(seen), [x for x in seen if x[0] != 200][:5]
    first_new = versions.index(new)
    assert set(versions[:first_new]) == {old} and set(versions[first_new:]) == {new}
    assert versions.count(old) >= 50 and versions.count(new) >= 30
