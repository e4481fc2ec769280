"""MCD: the fast path against the recipe-style reference (pysptk per frame + fastdtw) on real speech."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torchaudio

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.metrics import dtw as dtw_mod
from ganpipe.metrics.mcd import (
    HOP,
    N_FFT,
    _frames,
    mcd,
    mcd_from_mcep,
    mcd_reference,
    mcep_params,
    mel_cepstrum,
    mel_cepstrum_reference,
)

# the two shortest clips of ljspeech-mini keep the per-frame pysptk reference affordable
SHORT_CLIPS = ("LJ001-0008.wav", "LJ001-0002.wav")



# ---------------------------------------------------------------- degradations of a clean clip


def resampled(x: np.ndarray, sr: int, mid_sr: int = 16000) -> np.ndarray:
    """Round trip through ``mid_sr`` (drops the band above mid_sr / 2), same length as ``x``."""
    y = soxr.resample(soxr.resample(x, sr, mid_sr), mid_sr, sr)
    out = np.zeros_like(x)
    n = min(len(x), len(y))
    out[:n] = y[:n]
    return out


def noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise_power = np.mean(x**2) / 10 ** (snr_db / 10)
    return x + rng.normal(size=x.shape) * np.sqrt(noise_power)


def _griffin_lim(magnitude: torch.Tensor, length: int, config: MelConfig, n_iter: int) -> np.ndarray:
    gl = torchaudio.transforms.GriffinLim(
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        power=1.0,
        n_iter=n_iter,
        rand_init=False,
    )
    y = gl(magnitude).numpy().astype(np.float64)
    # ganpipe.mel frames are centred hop/2 samples later than torch's center=True frames
    shift = config.n_fft // 2 - (config.n_fft - config.hop_length) // 2
    out = np.zeros(length)
    seg = y[: length - shift]
    out[shift : shift + len(seg)] = seg
    return out


def griffin_lim(x: np.ndarray, sr: int, n_iter: int = 8) -> np.ndarray:
    """Phase thrown away: Griffin-Lim from the project mel's linear magnitude."""
    config = MelConfig(sample_rate=sr)
    mag = MelSpectrogram(config).magnitude(torch.from_numpy(x.astype(np.float32)))
    return _griffin_lim(mag, len(x), config, n_iter)


def crude_vocoder(x: np.ndarray, sr: int, n_iter: int = 8) -> np.ndarray:
    """log-mel -> mel pseudo-inverse -> Griffin-Lim: a bad but mel-conditioned 'vocoder'."""
    config = MelConfig(sample_rate=sr)
    mel = MelSpectrogram(config)
    with torch.no_grad():
        mel_mag = torch.exp(mel(torch.from_numpy(x.astype(np.float32))))
        linear = torch.clamp(torch.linalg.pinv(mel.mel_basis) @ mel_mag, min=0.0)
    return _griffin_lim(linear, len(x), config, n_iter)


DEGRADATIONS = {
    "resampled16k": lambda x, sr: resampled(x, sr),
    "noise20db": lambda x, sr: noisy(x, 20.0),
    "griffinlim": lambda x, sr: griffin_lim(x, sr),
    "crude_vocoder": lambda x, sr: crude_vocoder(x, sr),
}


@pytest.fixture(scope="module")
def short_clips(ljspeech_mini: Path) -> list[tuple[str, np.ndarray, int]]:
    clips = []
    for name in SHORT_CLIPS:
        x, sr = sf.read(ljspeech_mini / "wavs" / name, dtype="float64")
        clips.append((name, x, sr))
    return clips


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# ---------------------------------------------------------------- analysis parameters


def test_mcep_params_by_rate() -> None:
    assert mcep_params(16000) == (23, 0.42)
    assert mcep_params(22050) == (34, 0.45)
    assert mcep_params(24000) == (34, 0.46)
    assert mcep_params(44100) == (39, 0.53)
    assert mcep_params(48000) == (39, 0.55)
    assert mcep_params(22050, order=24) == (24, 0.45)


def test_unknown_rate_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"8000 Hz.*16000, 22050, 24000, 44100, 48000"):
        mcep_params(8000)
    assert mcep_params(8000, order=16, alpha=0.31) == (16, 0.31)
    x = np.random.default_rng(0).normal(size=8000) * 0.1
    with pytest.raises(ValueError, match="8000"):
        mcd(x, x, 8000)


# ---------------------------------------------------------------- mel-cepstral analysis


def test_batched_mcep_equals_pysptk_per_frame(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    _, x, sr = short_clips[0]
    frames = _frames(x * 32768.0, N_FFT, HOP)
    frames[3] = 0.0  # a digitally silent frame: only the eps floor is left
    for order, alpha in (mcep_params(sr), mcep_params(16000)):
        fast = mel_cepstrum(frames, order, alpha)
        ref = mel_cepstrum_reference(frames, order, alpha)
        assert fast.shape == ref.shape == (frames.shape[0], order + 1)
        np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-8)


def test_mcep_rejects_bad_frames() -> None:
    with pytest.raises(ValueError, match="power of two"):
        mel_cepstrum(np.ones((2, 1000)), 24, 0.42)
    with pytest.raises(ValueError, match=r"\(N, n_fft\)"):
        mel_cepstrum(np.ones(1024), 24, 0.42)


# ---------------------------------------------------------------- MCD: fast vs reference


@pytest.mark.parametrize("kind", sorted(DEGRADATIONS))
def test_fast_mcd_agrees_with_reference(kind: str, short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    # one clip per degradation keeps the per-frame reference affordable; the benchmark
    # (benchmarks/bench_mcd.py) checks the agreement on all 32 clips
    name, x, sr = short_clips[sorted(DEGRADATIONS).index(kind) % len(short_clips)]
    gen = DEGRADATIONS[kind](x, sr)
    ref_value = mcd_reference(x, gen, sr)
    fast_value = mcd(x, gen, sr)
    exact_value = mcd(x, gen, sr, dtw="exact")
    assert 0.5 < ref_value < 30.0, (name, ref_value)
    # the contract: within 1 % of the recipe; the fastdtw path reproduces it to rounding
    assert _rel(fast_value, ref_value) < 1e-2, (name, fast_value, ref_value)
    assert _rel(fast_value, ref_value) < 1e-9, (name, fast_value, ref_value)
    assert _rel(exact_value, ref_value) < 1e-2, (name, exact_value, ref_value)


def test_fast_mcd_agrees_on_time_warped_speech(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    """A repeated and a deleted segment make the DTW path non-trivial (the degradations above
    are sample-aligned, so their path is the diagonal)."""
    _, x, sr = short_clips[1]
    a, b = len(x) // 3, 2 * len(x) // 3
    warped = np.concatenate([x[:a], x[a - 3000 : a], x[a:b], x[b + 4000 :]])
    gen = noisy(warped, 25.0)
    ref_value = mcd_reference(x, gen, sr)
    assert _rel(mcd(x, gen, sr), ref_value) < 1e-9
    assert _rel(mcd(x, gen, sr, dtw="exact"), ref_value) < 1e-2
    # without alignment the frames after the edit are compared with the wrong ones
    assert mcd(x, gen, sr, use_dtw=False) > ref_value + 1.0


def test_identical_signals_give_zero(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    _, x, sr = short_clips[0]
    assert mcd(x, x, sr) == pytest.approx(0.0, abs=1e-9)
    assert mcd(x, x, sr, use_dtw=False) == pytest.approx(0.0, abs=1e-9)
    assert mcd(x, x, sr, dtw="exact") == pytest.approx(0.0, abs=1e-9)


def test_more_noise_gives_higher_mcd(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    _, x, sr = short_clips[0]
    values = [mcd(x, noisy(x, snr), sr) for snr in (40.0, 30.0, 20.0, 10.0, 0.0)]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values


def test_c0_carries_the_gain(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    """Halving the amplitude shifts c0 by ln(1/2) and leaves the other coefficients alone."""
    _, x, sr = short_clips[0]
    order, alpha = mcep_params(sr)
    ref_mc = mel_cepstrum(_frames(x * 32768.0, N_FFT, HOP), order, alpha)
    gen_mc = mel_cepstrum(_frames(0.5 * x * 32768.0, N_FFT, HOP), order, alpha)
    energy = np.sum(_frames(x, N_FFT, HOP) ** 2, axis=1)
    loud = energy > 1e-3 * energy.max()  # the eps floor of the periodogram is negligible there
    assert loud.sum() > 50
    np.testing.assert_allclose(gen_mc[loud, 0] - ref_mc[loud, 0], math.log(0.5), atol=1e-3)
    np.testing.assert_allclose(gen_mc[loud, 1:], ref_mc[loud, 1:], atol=1e-3)
    # per loud frame the distortion is 10/ln10 * sqrt(2) * ln 2 = 4.257 dB; quiet frames add less
    per_frame = 10.0 / math.log(10.0) * math.sqrt(2.0) * math.log(2.0)
    assert per_frame - 0.2 < mcd(x, 0.5 * x, sr) <= per_frame + 1e-6
    assert mcd(x, 0.5 * x, sr, include_c0=False) < 0.1
    assert mcd_reference(x, 0.5 * x, sr, include_c0=False) == pytest.approx(
        mcd(x, 0.5 * x, sr, include_c0=False), rel=1e-9
    )


def test_no_dtw_truncates_to_the_shorter(short_clips: list[tuple[str, np.ndarray, int]]) -> None:
    _, x, sr = short_clips[0]
    gen = noisy(x, 20.0)
    longer = np.concatenate([gen, noisy(x[: 10 * HOP], 0.0, seed=3)])
    assert mcd(x, longer, sr, use_dtw=False) == pytest.approx(mcd(x, gen, sr, use_dtw=False), rel=1e-12)
    assert mcd_reference(x, longer, sr, use_dtw=False) == pytest.approx(
        mcd(x, longer, sr, use_dtw=False), rel=1e-9
    )


def test_mcd_rejects_unusable_input() -> None:
    x = np.random.default_rng(0).normal(size=4000) * 0.1
    with pytest.raises(ValueError, match="gen has 500 samples"):
        mcd(x, x[:500], 22050)
    bad = x.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="ref contains NaN"):
        mcd(bad, x, 22050)
    with pytest.raises(ValueError, match="1-D"):
        mcd(np.stack([x, x]), x, 22050)
    with pytest.raises(ValueError, match="dtw must be"):
        mcd_from_mcep(np.zeros((3, 4)), np.zeros((3, 4)), dtw="bogus")  # type: ignore[arg-type]


# ---------------------------------------------------------------- DTW


def test_exact_dtw_equals_fastdtw_packages_full_dtw() -> None:
    from fastdtw import dtw as slow_dtw
    from scipy.spatial.distance import euclidean

    rng = np.random.default_rng(1)
    for _ in range(25):
        n, m = rng.integers(1, 40, size=2)
        x, y = rng.normal(size=(n, 3)), rng.normal(size=(m, 3))
        cost, path = dtw_mod.dtw_path(x, y)
        want_cost, want_path = slow_dtw(x, y, dist=euclidean)
        assert cost == pytest.approx(want_cost, rel=1e-12)
        np.testing.assert_array_equal(path, np.array(want_path))


def test_compiled_fastdtw_reproduces_the_package() -> None:
    from fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    rng = np.random.default_rng(2)
    for _ in range(12):
        n, m = rng.integers(2, 300, size=2)
        x = np.cumsum(rng.normal(size=(n, 4)), axis=0)
        y = np.cumsum(rng.normal(size=(m, 4)), axis=0)
        for radius in (1, 3):
            cost, path = dtw_mod.fastdtw_path(x, y, radius=radius)
            want_cost, want_path = fastdtw(x, y, radius=radius, dist=euclidean)
            assert cost == pytest.approx(want_cost, rel=1e-12)
            np.testing.assert_array_equal(path, np.array(want_path))
            exact_cost, _ = dtw_mod.dtw_path(x, y)
            assert exact_cost <= cost + 1e-9


def test_dtw_path_is_monotone_and_complete() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(50, 2)), rng.normal(size=(70, 2))
    for fn in (dtw_mod.dtw_path, dtw_mod.fastdtw_path):
        cost, path = fn(x, y)
        assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (49, 69)
        steps = np.diff(path, axis=0)
        assert np.all((steps >= 0) & (steps <= 1)) and np.all(steps.sum(axis=1) >= 1)
        assert cost == pytest.approx(dtw_mod.path_cost(x, y, path).sum(), rel=1e-12)


def test_dtw_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="feature dimensions differ"):
        dtw_mod.dtw_path(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="non-empty"):
        dtw_mod.fastdtw_path(np.zeros((0, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="radius"):
        dtw_mod.fastdtw_path(np.zeros((3, 2)), np.zeros((3, 2)), radius=-1)
