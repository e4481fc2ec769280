"""F0 metrics, wide-band PESQ and score_pair (length rule, input errors) on real speech."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.metrics import METRIC_KEYS, MetricInputError, score_pair
from ganpipe.metrics.pitch import (
    F0Config,
    cents_error,
    extract_f0,
    f0_rmse_cents,
    f0_rmse_cents_tracks,
    vuv_f1,
    vuv_f1_tracks,
)
from ganpipe.metrics.quality import PesqInputError, pesq_wb

SR = 22050



@pytest.fixture(scope="module")
def clip(ljspeech_mini: Path) -> np.ndarray:
    x, sr = sf.read(ljspeech_mini / "wavs" / "LJ001-0008.wav", dtype="float64")
    assert sr == SR
    return x


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x + rng.normal(size=x.shape) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))


def _harmonic_tone(f0: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))  # type: ignore[return-value]


# ---------------------------------------------------------------- F0 tracks (hand-made)


def test_track_metrics_on_hand_made_tracks() -> None:
    ref = np.array([0.0, 100.0, 100.0, 200.0, 0.0, 150.0])
    gen = np.array([0.0, 200.0, 100.0, 0.0, 120.0, 150.0, 99.0])  # one frame longer: cut
    np.testing.assert_allclose(cents_error(ref, gen), [1200.0, 0.0, 0.0])
    assert f0_rmse_cents_tracks(ref, gen) == pytest.approx(math.sqrt(1200.0**2 / 3))
    # voiced: ref {1,2,3,5}, gen {1,2,4,5}: TP 3, FP 1, FN 1
    assert vuv_f1_tracks(ref, gen) == pytest.approx(6 / 8)
    assert math.isnan(f0_rmse_cents_tracks(ref, np.zeros(6)))
    assert vuv_f1_tracks(ref, np.zeros(6)) == 0.0
    assert vuv_f1_tracks(np.zeros(4), np.zeros(4)) == 1.0


def test_f0_config_validation() -> None:
    with pytest.raises(ValueError, match="f0_floor < f0_ceil"):
        F0Config(f0_floor=300.0, f0_ceil=200.0)
    with pytest.raises(ValueError, match="method"):
        F0Config(method="crepe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Nyquist"):
        extract_f0(np.zeros(1600), 1600, F0Config(f0_ceil=800.0))


# ---------------------------------------------------------------- F0 on audio


def test_identical_speech_has_zero_f0_error(clip: np.ndarray) -> None:
    assert f0_rmse_cents(clip, clip, SR) == 0.0
    assert vuv_f1(clip, clip, SR) == 1.0


def test_semitone_tones_differ_by_100_cents() -> None:
    low, high = _harmonic_tone(150.0), _harmonic_tone(150.0 * 2 ** (1 / 12))
    for method in ("pyin", "harvest", "dio"):
        config = F0Config(method=method)
        assert f0_rmse_cents(low, high, SR, config) == pytest.approx(100.0, abs=3.0)
        assert vuv_f1(low, high, SR, config) > 0.95


def test_resample_trick_pitch_shift_is_measured(clip: np.ndarray) -> None:
    """Resampling by 1/k and playing at the same rate raises the pitch by k (and speeds it up by k);
    analysing the shifted signal with a frame period shrunk by k puts its frames at the same
    instants of the utterance as the reference's."""
    k = 2 ** (1 / 12)  # one semitone = 100 cents
    shifted = soxr.resample(clip, SR, SR / k)
    harvest = F0Config(method="harvest")  # the only tracker here with a fractional frame period
    ref_f0 = extract_f0(clip, SR, harvest)
    gen_f0 = extract_f0(shifted, SR, F0Config(method="harvest", frame_period_ms=5.0 / k))
    err = cents_error(ref_f0, gen_f0)
    assert err.size > 100
    assert np.median(err) == pytest.approx(100.0, abs=10.0)
    assert np.mean(np.abs(err - 100.0) < 50.0) > 0.8  # most frames within half a semitone


def test_white_noise_has_low_voicing_f1(clip: np.ndarray) -> None:
    noise = np.random.default_rng(0).normal(size=clip.shape) * 0.05
    assert vuv_f1(clip, noise, SR) < 0.2


# ---------------------------------------------------------------- PESQ


def test_pesq_identical_and_noisy(clip: np.ndarray) -> None:
    assert pesq_wb(clip, clip, SR) == pytest.approx(4.64, abs=0.01)
    mild, strong = pesq_wb(clip, _noisy(clip, 30.0), SR), pesq_wb(clip, _noisy(clip, 5.0), SR)
    assert strong < mild < 4.5
    assert strong < 2.0


def test_pesq_unscorable_input(clip: np.ndarray) -> None:
    with pytest.raises(PesqInputError, match="too short"):
        pesq_wb(clip[:2000], clip[:2000], SR)
    with pytest.raises(PesqInputError, match="silent"):
        pesq_wb(np.zeros(SR), clip[:SR], SR)
    with pytest.raises(PesqInputError, match="generated signal is silent"):
        pesq_wb(clip[:SR], np.zeros(SR), SR)
    with pytest.raises(PesqInputError, match="NaN"):
        pesq_wb(clip[:SR], np.full(SR, np.nan), SR)
    with pytest.warns(RuntimeWarning, match="too short"):
        assert math.isnan(pesq_wb(clip[:2000], clip[:2000], SR, on_error="nan"))


# ---------------------------------------------------------------- score_pair


def test_score_pair_identical_and_degraded(clip: np.ndarray) -> None:
    same = score_pair(clip, clip, SR, None)
    assert tuple(same) == METRIC_KEYS
    assert same["mcd"] == pytest.approx(0.0, abs=1e-9)
    assert same["mrstft"] == pytest.approx(0.0, abs=1e-9)
    assert same["logmel_l1"] == pytest.approx(0.0, abs=1e-9)
    assert same["pesq"] == pytest.approx(4.64, abs=0.01)
    assert same["f0_rmse_cents"] == 0.0 and same["vuv_f1"] == 1.0

    # a vocoder-style output: 10 dB noise and one hop shorter than the reference
    gen = _noisy(clip, 10.0)[: len(clip) // 256 * 256]
    worse = score_pair(clip, gen, SR, MelSpectrogram(MelConfig(sample_rate=SR)))
    assert all(np.isfinite(v) for v in worse.values()), worse
    assert worse["mcd"] > 5.0 and worse["mrstft"] > 0.5 and worse["logmel_l1"] > 0.3
    assert worse["pesq"] < 2.5 and worse["vuv_f1"] < 1.0


def test_score_pair_length_rule(clip: np.ndarray) -> None:
    fast_f0 = F0Config(method="dio")  # F0 is not what this test is about
    ok = score_pair(clip, clip[:-255], SR, None, f0_config=fast_f0)  # within one hop: trimmed and scored
    assert ok["mcd"] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(MetricInputError, match=r"LJ001-0008: lengths differ by 1000 samples"):
        score_pair(clip, clip[:-1000], SR, None, utt="LJ001-0008")
    # a wider tolerance lets a 1000-sample offset through: frame metrics see the misalignment,
    # MCD (DTW-aligned) much less
    shifted = score_pair(clip, clip[1000:], SR, None, max_length_diff=1000, f0_config=fast_f0)
    assert shifted["mrstft"] > 1.0 and shifted["logmel_l1"] > 0.5
    assert shifted["mcd"] < 4.0


def test_score_pair_reports_unscorable_pesq_as_nan(clip: np.ndarray) -> None:
    short = clip[5000:8000]  # 0.14 s: enough for the other metrics, too short for PESQ
    with pytest.warns(RuntimeWarning, match="utt-7: PESQ: input too short"):
        scores = score_pair(short, _noisy(short, 20.0), SR, None, utt="utt-7")
    assert math.isnan(scores["pesq"])
    assert all(np.isfinite(scores[k]) for k in ("mcd", "mrstft", "logmel_l1", "vuv_f1"))


def test_score_pair_rejects_bad_input(clip: np.ndarray) -> None:
    bad = clip.copy()
    bad[100:103] = np.nan
    with pytest.raises(MetricInputError, match="gen contains 3 NaN/inf"):
        score_pair(clip, bad, SR, None)
    inf = clip.copy()
    inf[5] = np.inf
    with pytest.raises(MetricInputError, match="ref contains 1 NaN/inf"):
        score_pair(inf, clip, SR, None)
    with pytest.raises(MetricInputError, match="gen is silent"):
        score_pair(clip, np.zeros_like(clip), SR, None)
    with pytest.raises(MetricInputError, match="at least 1025"):
        score_pair(clip[:800], clip[:800], SR, None)
    with pytest.raises(MetricInputError, match="mono 1-D"):
        score_pair(np.stack([clip, clip]), clip, SR, None)
    with pytest.raises(MetricInputError, match="float audio"):
        score_pair((clip * 32767).astype(np.int16), clip, SR, None)
    with pytest.raises(MetricInputError, match="mel is configured for 16000 Hz but the audio is 22050 Hz"):
        score_pair(clip, clip, SR, MelSpectrogram(MelConfig(sample_rate=16000)))
    with pytest.raises(MetricInputError, match=r"x\.wav: no mel-cepstrum setting for sample rate 32000"):
        score_pair(clip, clip, 32000, None, utt="x.wav")
