"""Audio file I/O (soundfile) and resampling (soxr), with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ganpipe.atomic import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")


class AudioError(ValueError):
    """An audio file that cannot be used, with the file and the reason in the message."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def read_audio(path: str | Path, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read a file as float32 in [-1, 1]; mono mix-down (channel mean) unless ``mono=False``.

    Returns ``(samples, sample_rate)``; ``samples`` is 1-D when mono, else ``(frames, channels)``.
    Raises :class:`AudioError` for unreadable/corrupt files.
    """
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(path, f"unreadable audio ({type(exc).__name__}: {exc})") from None
    if mono:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def resample(wav: np.ndarray, sr_in: int, sr_out: int, quality: str = "VHQ") -> np.ndarray:
    """High-quality band-limited resampling (libsoxr); a no-op when the rates match."""
    if sr_in == sr_out:
        return wav
    return soxr.resample(wav, sr_in, sr_out, quality=quality).astype(np.float32, copy=False)


def write_audio(path: str | Path, wav: np.ndarray, sample_rate: int, fmt: str = "pcm16") -> None:
    """Write a WAV atomically. ``fmt``: ``pcm16`` (clipped to [-1, 1]) or ``float`` (32-bit)."""
    subtype = {"pcm16": "PCM_16", "float": "FLOAT"}[fmt]
    data = np.clip(wav, -1.0, 1.0) if fmt == "pcm16" else wav
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype=subtype, format="WAV")
