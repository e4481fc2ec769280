"""A client of ``ganpipe serve``, so that a TTS back-end does not hand-roll HTTP.

>>> from ganpipe.client import vocode
>>> audio, sr = vocode("http://127.0.0.1:8080", mel)              # (n_mels, frames) -> float32 samples
>>> answer = vocode_answer("http://127.0.0.1:8080", mel, stream=True)
>>> answer.version, answer.generator_sha256, answer.warning        # which model made it; a mel warning
>>> audio, sr = copy_synthesis("http://127.0.0.1:8080", "in.wav", resample=True)
>>> clips, sr = generate("http://127.0.0.1:8080", n=4, seed=0)    # unconditional models: (clips, samples)

The bearer token: ``token=``, else ``$GANPIPE_SERVE_API_KEY`` when set. A refused request raises
:class:`ServerError` with the status and the server's message (422: the message names the problem).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOKEN_ENV = "GANPIPE_SERVE_API_KEY"


class ServerError(RuntimeError):
    def __init__(self, status: int, message: str, retry_after: str | None = None):
        self.status, self.message, self.retry_after = status, message, retry_after
        super().__init__(f"HTTP {status}: {message}")


@dataclass(frozen=True)
class Answer:
    audio: np.ndarray  # float32 (samples,) or (samples, channels)
    sample_rate: int
    version: str | None  # the registry version that made it
    generator_sha256: str | None
    warning: str | None  # e.g. a mel of another kind than the model's
    wav: bytes  # the bytes as received


def _headers(token: str | None, content_type: str) -> dict[str, str]:
    token = token or os.environ.get(TOKEN_ENV)
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _post(url: str, path: str, body: bytes, content_type: str, params: dict[str, Any], token: str | None,
          timeout: float) -> Answer:
    import httpx
    import soundfile as sf

    query = {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in params.items() if v is not None}
    response = httpx.post(url.rstrip("/") + path, content=body, params=query, headers=_headers(token, content_type),
                          timeout=timeout)
    if response.status_code != 200:
        try:
            message = response.json().get("detail", response.text)
        except ValueError:
            message = response.text
        raise ServerError(response.status_code, str(message), response.headers.get("retry-after"))
    audio, rate = sf.read(io.BytesIO(response.content), dtype="float32")
    h = response.headers
    return Answer(audio, int(rate), h.get("x-model-version"), h.get("x-generator-sha256"), h.get("x-ganpipe-warning"),
                  response.content)


def _npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def vocode_answer(url: str, mel: Any, *, stream: bool = False, fmt: str = "pcm16", speaker: str | None = None,
                  mel_config: dict[str, Any] | str | Path | None = None, token: str | None = None,
                  timeout: float = 300.0) -> Answer:
    """``POST /v1/vocode`` of ``mel`` (an ``(n_mels, frames)`` array or a ``.npy`` file)."""
    if isinstance(mel, (str, Path)):
        mel = np.load(mel, allow_pickle=False)
    if isinstance(mel_config, (str, Path)):
        mel_config = json.loads(Path(mel_config).read_text())
    params = {"stream": stream, "format": fmt, "speaker": speaker,
              "mel_config": None if mel_config is None else json.dumps(mel_config)}
    return _post(url, "/v1/vocode", _npy(mel), "application/x-npy", params, token, timeout)


def vocode(url: str, mel: Any, **options: Any) -> tuple[np.ndarray, int]:
    """``(audio, sample_rate)`` of ``mel``; options of :func:`vocode_answer`."""
    answer = vocode_answer(url, mel, **options)
    return answer.audio, answer.sample_rate


def copy_synthesis(url: str, wav: str | Path | bytes, *, resample: bool = False, stream: bool = False,
                   fmt: str = "pcm16", speaker: str | None = None, token: str | None = None,
                   timeout: float = 300.0) -> tuple[np.ndarray, int]:
    """``POST /v1/copy-synthesis`` of an audio file (path or bytes)."""
    body = wav if isinstance(wav, bytes) else Path(wav).read_bytes()
    params = {"resample": resample, "stream": stream, "format": fmt, "speaker": speaker}
    answer = _post(url, "/v1/copy-synthesis", body, "audio/wav", params, token, timeout)
    return answer.audio, answer.sample_rate


def generate(url: str, *, n: int = 1, seed: int = 0, label: str | None = None, token: str | None = None,
             timeout: float = 300.0) -> tuple[np.ndarray, int]:
    """``POST /v1/generate``: ``(clips (n, samples), sample_rate)`` of an unconditional model."""
    body = json.dumps({"n": n, "seed": seed, "label": label}).encode()
    answer = _post(url, "/v1/generate", body, "application/json", {}, token, timeout)
    clips = answer.audio if answer.audio.ndim == 2 else answer.audio[:, None]
    return np.ascontiguousarray(clips.T), answer.sample_rate


def synthesize(url: str, *, mel: Any = None, wav: Any = None, mel_config: Any = None, speaker: str | None = None,
               resample: bool = False, n: int | None = None, seed: int | None = None, label: str | None = None,
               token: str | None = None) -> tuple[np.ndarray, int]:
    """What ``ganpipe synthesize --server URL`` asks: a mel, a WAV, or clips of an unconditional model."""
    if mel is not None:
        return vocode(url, mel, mel_config=mel_config, speaker=speaker, token=token)
    if wav is not None:
        return copy_synthesis(url, wav, resample=resample, speaker=speaker, token=token)
    return generate(url, n=n or 1, seed=seed or 0, label=label, token=token)
