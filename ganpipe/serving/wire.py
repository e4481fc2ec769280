"""What travels over HTTP: request bodies (a mel as ``.npy`` bytes or JSON, a WAV) read into arrays,
and audio written as WAV bytes (16-bit PCM or 32-bit float), whole or as a header + chunks.

The WAV header of a streamed answer states the final length: a vocoder's output length is known
from the mel before any sample is computed (``frames * hop``), so a streamed file is a normal WAV.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np

from ganpipe.serving.contract import SynthesisError

WAV_FORMATS = ("pcm16", "float32")
NPY_TYPES = ("application/x-npy", "application/octet-stream")


def wav_header(samples: int, sample_rate: int, fmt: str = "pcm16", channels: int = 1) -> bytes:
    """The 44-byte RIFF header of ``samples`` frames (``fmt``: pcm16 or float32 IEEE)."""
    if fmt not in WAV_FORMATS:
        raise SynthesisError(f"format must be one of {list(WAV_FORMATS)}, got {fmt!r}")
    width, code = (2, 1) if fmt == "pcm16" else (4, 3)
    data = samples * channels * width
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, code, channels, sample_rate, sample_rate * channels * width,
                                    channels * width, 8 * width)
            + b"data" + struct.pack("<I", data))


def wav_samples(audio: np.ndarray, fmt: str = "pcm16") -> bytes:
    """The data bytes of float audio ``(samples,)`` or ``(samples, channels)`` (pcm16: clipped to [-1, 1])."""
    audio = np.asarray(audio, dtype=np.float32)
    if fmt == "float32":
        return audio.astype("<f4").tobytes()
    return np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_bytes(audio: np.ndarray, sample_rate: int, fmt: str = "pcm16") -> bytes:
    """A whole WAV file of ``audio`` (``(samples,)``, or ``(samples, channels)``)."""
    audio = np.asarray(audio, dtype=np.float32)
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    return wav_header(audio.shape[0], sample_rate, fmt, channels) + wav_samples(audio, fmt)


def read_npy(body: bytes) -> np.ndarray:
    """A ``.npy`` body (no pickles) -> array; :class:`SynthesisError` when it is not one."""
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SynthesisError(f"body is not a .npy array ({exc})") from None


def read_json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SynthesisError(f"body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SynthesisError("a JSON body must be an object, e.g. {\"mel\": [[...], ...]}")
    return data


def json_mel(data: dict[str, Any]) -> np.ndarray:
    if "mel" not in data:
        raise SynthesisError("a JSON body must hold \"mel\": a (n_mels, frames) array of numbers")
    try:
        return np.asarray(data["mel"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SynthesisError(f"\"mel\" is not a numeric array ({exc})") from None


def read_wav(body: bytes) -> tuple[np.ndarray, int]:
    """A WAV (any format soundfile reads) body -> (mono float32 signal, rate)."""
    import soundfile as sf

    try:
        signal, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise SynthesisError(f"body is not a readable audio file ({exc})") from None
    if signal.shape[1] != 1:
        raise SynthesisError(f"audio must be mono, got {signal.shape[1]} channels")
    return signal[:, 0], int(rate)
