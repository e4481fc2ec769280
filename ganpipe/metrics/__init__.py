"""Objective metrics for a generated waveform against its reference.

:func:`score_pair` computes all of them for one utterance:

========================  =====================================================  ============
key                       what                                                   better
========================  =====================================================  ============
``mcd``                   mel-cepstral distortion, dB (ESPnet/PWG recipe, DTW)   lower
``mrstft``                multi-resolution STFT distance (sc + log-mag)          lower
``logmel_l1``             mean abs difference of the project's log-mels          lower
``pesq``                  wide-band PESQ, 1.0 .. 4.64 (NaN when not scorable)    higher
``f0_rmse_cents``         F0 RMSE over frames voiced in both (NaN if none)       lower
``vuv_f1``                voicing F1, ``gen`` decisions vs ``ref`` labels        higher
========================  =====================================================  ============

Length rule: a vocoder's output length differs from its reference by less than one mel hop
(``T // hop * hop`` or ``(T // hop + 1) * hop`` samples). :func:`score_pair` therefore accepts a
length difference of at most ``max_length_diff`` samples (default: the mel hop length, 256 when no
mel is given), trims both signals to the shorter length and scores them; a larger difference means
the pair is not what it should be (wrong file, wrong rate, missing padding rule) and raises
:class:`MetricInputError`. So do NaN/inf samples, silent signals (peak below
:data:`SILENCE_PEAK`), multi-channel arrays and signals shorter than :data:`MIN_SAMPLES`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.metrics.mcd import mcd as _mcd  # renamed: ganpipe.metrics.mcd stays the submodule
from ganpipe.metrics.pitch import F0Config, extract_f0, f0_rmse_cents_tracks, vuv_f1_tracks
from ganpipe.metrics.quality import PesqInputError, pesq_wb
from ganpipe.stft_distance import mrstft_distance

__all__ = [
    "METRIC_KEYS",
    "HIGHER_IS_BETTER",
    "MIN_SAMPLES",
    "SILENCE_PEAK",
    "MetricInputError",
    "logmel_l1",
    "score_pair",
]

METRIC_KEYS: tuple[str, ...] = ("mcd", "mrstft", "logmel_l1", "pesq", "f0_rmse_cents", "vuv_f1")
HIGHER_IS_BETTER: dict[str, bool] = {
    "mcd": False,
    "mrstft": False,
    "logmel_l1": False,
    "pesq": True,
    "f0_rmse_cents": False,
    "vuv_f1": True,
}
#: shortest signal scored (samples): the MR-STFT's largest FFT needs more than 1024 of them
MIN_SAMPLES = 2048 // 2 + 1
#: a signal whose absolute peak is below this (-120 dBFS) counts as silent
SILENCE_PEAK = 1e-6
_DEFAULT_HOP = 256


class MetricInputError(ValueError):
    """A reference/generated pair that cannot be scored; the message names the utterance."""

    def __init__(self, reason: str, utt: str | None = None):
        super().__init__(f"{utt}: {reason}" if utt else reason)
        self.reason = reason
        self.utt = utt


_MEL_CACHE: dict[int, MelSpectrogram] = {}


def _default_mel(sr: int) -> MelSpectrogram:
    mel = _MEL_CACHE.get(sr)
    if mel is None:
        mel = _MEL_CACHE.setdefault(sr, MelSpectrogram(MelConfig(sample_rate=sr)))
    return mel


def logmel_l1(ref: np.ndarray, gen: np.ndarray, mel: MelSpectrogram) -> float:
    """Mean absolute difference between the log-mels of two equal-length waveforms.

    The mel is used as configured (log base, clamp, and normalisation when it carries stats).
    """
    with torch.no_grad():
        a = mel(torch.from_numpy(np.ascontiguousarray(ref, dtype=np.float32)))
        b = mel(torch.from_numpy(np.ascontiguousarray(gen, dtype=np.float32)))
    return float(torch.mean(torch.abs(a - b)))


def _check_signal(x: Any, name: str, utt: str | None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be a mono 1-D waveform, got shape {arr.shape}", utt)
    if not np.issubdtype(arr.dtype, np.floating):
        raise MetricInputError(f"{name} must be float audio in [-1, 1], got dtype {arr.dtype}", utt)
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise MetricInputError(f"{name} contains {int(bad.sum())} NaN/inf sample(s)", utt)
    if arr.shape[0] < MIN_SAMPLES:
        raise MetricInputError(f"{name} has {arr.shape[0]} samples; at least {MIN_SAMPLES} are needed", utt)
    peak = float(np.max(np.abs(arr)))
    if peak < SILENCE_PEAK:
        raise MetricInputError(f"{name} is silent (peak {peak:.2e} < {SILENCE_PEAK:.0e})", utt)
    return arr


def score_pair(
    ref: np.ndarray,
    gen: np.ndarray,
    sr: int,
    mel: MelSpectrogram | None = None,
    *,
    max_length_diff: int | None = None,
    f0_config: F0Config | None = None,
    utt: str | None = None,
) -> dict[str, float]:
    """All metrics (:data:`METRIC_KEYS`) of ``gen`` against ``ref``, both float waveforms at ``sr``.

    ``mel``: the project's mel (its config must have ``sample_rate == sr``); ``None`` uses
    ``MelConfig(sample_rate=sr)``. ``f0_config``: F0 tracker settings (``None``: Harvest
    defaults). ``utt`` (an utterance id or file path) prefixes error messages.
    Raises :class:`MetricInputError` for unusable input (see the module docstring).
    """
    ref_a, gen_a, mel = _checked_pair(ref, gen, sr, mel, max_length_diff, utt)
    return _scores(ref_a, gen_a, sr, mel, f0_config if f0_config is not None else F0Config(), utt)


def _checked_pair(ref: Any, gen: Any, sr: int, mel: MelSpectrogram | None, max_length_diff: int | None,
                  utt: str | None) -> tuple[np.ndarray, np.ndarray, MelSpectrogram]:
    """``ref`` and ``gen`` checked and trimmed to the shorter length, and the mel to score with
    (:func:`score_pair`'s rules; :class:`MetricInputError` where one is broken)."""
    if sr <= 0:
        raise MetricInputError(f"invalid sample rate {sr}", utt)
    ref_a = _check_signal(ref, "ref", utt)
    gen_a = _check_signal(gen, "gen", utt)
    if mel is None:
        mel = _default_mel(sr)
    elif mel.config.sample_rate != sr:
        raise MetricInputError(
            f"mel is configured for {mel.config.sample_rate} Hz but the audio is {sr} Hz", utt
        )
    tolerance = mel.config.hop_length if max_length_diff is None else int(max_length_diff)
    diff = abs(ref_a.shape[0] - gen_a.shape[0])
    if diff > tolerance:
        raise MetricInputError(
            f"lengths differ by {diff} samples (ref {ref_a.shape[0]}, gen {gen_a.shape[0]}); "
            f"at most {tolerance} allowed",
            utt,
        )
    n = min(ref_a.shape[0], gen_a.shape[0])
    return ref_a[:n], gen_a[:n], mel


def _scores(ref_a: np.ndarray, gen_a: np.ndarray, sr: int, mel: MelSpectrogram, f0_cfg: F0Config,
            utt: str | None) -> dict[str, float]:
    """The metrics of a checked, equal-length pair (PESQ NaN, with a warning, where it cannot score)."""
    try:
        mcd_db = _mcd(ref_a, gen_a, sr)
        mrstft = mrstft_distance(ref_a, gen_a, sr)
        ref_f0 = extract_f0(ref_a, sr, f0_cfg)
        gen_f0 = extract_f0(gen_a, sr, f0_cfg)
    except ValueError as exc:
        raise MetricInputError(str(exc), utt) from exc
    try:
        pesq = pesq_wb(ref_a, gen_a, sr)
    except PesqInputError as exc:  # e.g. no speech activity: the other metrics still stand
        # stacklevel 3: the warning points at score_pair's caller, as it did before the split
        warnings.warn(f"{utt or 'pair'}: {exc}; pesq reported as NaN", RuntimeWarning, stacklevel=3)
        pesq = math.nan
    return {
        "mcd": mcd_db,
        "mrstft": mrstft,
        "logmel_l1": logmel_l1(ref_a, gen_a, mel),
        "pesq": pesq,
        "f0_rmse_cents": f0_rmse_cents_tracks(ref_f0, gen_f0),
        "vuv_f1": vuv_f1_tracks(ref_f0, gen_f0),
    }
