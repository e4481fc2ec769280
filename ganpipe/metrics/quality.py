"""Wide-band PESQ (ITU-T P.862.2) through the ``pesq`` package.

Both signals are resampled to 16 kHz with libsoxr (VHQ) and cut to the shorter length. Identical
signals score about 4.64 (the top of the wide-band MOS-LQO scale); the bottom is about 1.0.
PESQ needs at least 0.25 s of audio and some speech activity in the reference.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import numpy as np

from ganpipe.audio import resample

__all__ = ["PESQ_SR", "PesqInputError", "pesq_wb"]

PESQ_SR = 16000
_MIN_SAMPLES = PESQ_SR // 4


class PesqInputError(ValueError):
    """The pair cannot be scored by PESQ; ``reason`` says why."""

    def __init__(self, reason: str):
        super().__init__(f"PESQ: {reason}")
        self.reason = reason


def _prepare(x: np.ndarray, name: str, sr: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 1:
        raise PesqInputError(f"{name} must be a 1-D waveform, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise PesqInputError(f"{name} contains NaN or inf")
    return np.asarray(resample(arr, sr, PESQ_SR), dtype=np.float32)


def pesq_wb(
    ref: np.ndarray, gen: np.ndarray, sr: int, *, on_error: Literal["raise", "nan"] = "raise"
) -> float:
    """Wide-band PESQ of ``gen`` against ``ref`` (both at ``sr``).

    Too short (< 0.25 s), silent or non-speech input raises :class:`PesqInputError` naming the
    reason, or returns NaN (with a ``RuntimeWarning`` carrying the reason) when ``on_error="nan"``.
    """
    if on_error not in ("raise", "nan"):
        raise ValueError(f"on_error must be 'raise' or 'nan', got {on_error!r}")
    try:
        return _pesq_wb(ref, gen, sr)
    except PesqInputError as exc:
        if on_error == "raise":
            raise
        warnings.warn(str(exc), RuntimeWarning, stacklevel=2)
        return math.nan


def _pesq_wb(ref: np.ndarray, gen: np.ndarray, sr: int) -> float:
    from pesq import BufferTooShortError, NoUtterancesError, PesqError, pesq

    if sr <= 0:
        raise PesqInputError(f"invalid sample rate {sr}")
    ref16 = _prepare(ref, "ref", sr)
    gen16 = _prepare(gen, "gen", sr)
    n = min(ref16.shape[0], gen16.shape[0])
    if n < _MIN_SAMPLES:
        raise PesqInputError(f"input too short: {n / PESQ_SR:.3f} s at 16 kHz, PESQ needs at least 0.25 s")
    ref16, gen16 = ref16[:n], gen16[:n]
    if not np.any(ref16):
        raise PesqInputError("reference is silent (all zeros)")
    if not np.any(gen16):
        raise PesqInputError("generated signal is silent (all zeros)")
    try:
        return float(pesq(PESQ_SR, ref16, gen16, "wb"))
    except NoUtterancesError:
        raise PesqInputError("no speech activity detected (silent or non-speech input)") from None
    except BufferTooShortError:
        raise PesqInputError("input too short for PESQ") from None
    except PesqError as exc:
        raise PesqInputError(f"pesq failed: {exc}") from None
