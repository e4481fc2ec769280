"""Audio file I/O (soundfile) and resampling (soxr), with errors that name the file.

A truncated WAV (its header declares more audio data than the file holds: a copy or download cut
short) is reported as corrupt: libsndfile reads what is there without complaint.
"""

from __future__ import annotations

import struct
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
    truncated = wav_truncation(path)
    if truncated:
        raise AudioError(path, f"corrupt WAV file, truncated: {truncated}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - soundfile raises LibsndfileError/RuntimeError/TypeError
        raise AudioError(path, f"unreadable audio ({type(exc).__name__}: {exc})") from None
    if mono:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return np.ascontiguousarray(data, dtype=np.float32), int(sr)


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/WAVE file is truncated (its ``data`` chunk declares more bytes than the file holds,
    or the header itself is cut), or ``None`` (complete, or not a RIFF/WAVE file: left to libsndfile).

    Streamed WAVs that never filled in their sizes (0 or 0xFFFFFFFF) and RF64 files are not judged.
    """
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, 2)
            fh.seek(0)
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            block_align = 1
            offset = 12
            while True:
                header = fh.read(8)
                if len(header) < 8:
                    cut = len(header) or offset > size  # inside a chunk header, or a chunk longer than the rest
                    return f"the file ends ({size} bytes) inside its header, before the audio data" if cut else None
                chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
                offset += 8
                if chunk == b"data":
                    if length in (0, 0xFFFFFFFF):
                        return None
                    present = size - offset
                    if length - present >= block_align:
                        return (f"its header declares {length} bytes of audio data, the file holds {present} "
                                f"({present // block_align} of {length // block_align} sample frames)")
                    return None
                if chunk == b"fmt " and length >= 14:
                    fmt = fh.read(14)
                    if len(fmt) == 14:
                        block_align = max(1, struct.unpack("<H", fmt[12:14])[0])
                offset += length + (length & 1)  # chunks are word-aligned
                fh.seek(offset)
    except OSError:
        return None  # unreadable: read_audio's soundfile call reports it


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
