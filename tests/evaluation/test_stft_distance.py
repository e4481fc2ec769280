"""MultiResolutionSTFT against auraloss's MultiResolutionSTFTLoss on real speech pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torchaudio

from ganpipe.stft_distance import DEFAULT_RESOLUTIONS, MultiResolutionSTFT, STFTDistance, mrstft_distance

CLIPS = ("LJ001-0008.wav", "LJ001-0002.wav", "LJ001-0013.wav")



def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x + rng.normal(size=x.shape) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))


def _resampled(x: np.ndarray, sr: int) -> np.ndarray:
    y = soxr.resample(soxr.resample(x, sr, 16000), 16000, sr)
    out = np.zeros_like(x)
    out[: min(len(x), len(y))] = y[: len(x)]
    return out


def _griffin_lim(x: np.ndarray) -> np.ndarray:
    """Phase discarded, 8 Griffin-Lim iterations from the STFT magnitude."""
    mag = torch.stft(
        torch.from_numpy(x.astype(np.float32)), 1024, 256, 1024, torch.hann_window(1024), return_complex=True
    ).abs()
    gl = torchaudio.transforms.GriffinLim(
        n_fft=1024, hop_length=256, power=1.0, n_iter=8, length=len(x), rand_init=False
    )
    return gl(mag).numpy().astype(np.float64)


@pytest.fixture(scope="module")
def speech_pairs(ljspeech_mini: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    pairs = []
    for name in CLIPS:
        x, sr = sf.read(ljspeech_mini / "wavs" / name, dtype="float64")
        for kind, gen in (
            ("noisy", _noisy(x, 20.0)),
            ("resampled", _resampled(x, sr)),
            ("griffinlim", _griffin_lim(x)),
        ):
            pairs.append((f"{name}/{kind}", x, gen))
    return pairs


def _auraloss() -> torch.nn.Module:
    auraloss = pytest.importorskip("auraloss")
    fft, hop, win = zip(*DEFAULT_RESOLUTIONS, strict=True)
    # its defaults are the same definition: Hann, w_sc = w_log_mag = 1, eps 1e-8, mean reduction
    return auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=list(fft),
        hop_sizes=list(hop),
        win_lengths=list(win),
        window="hann_window",
        w_sc=1.0,
        w_log_mag=1.0,
        w_lin_mag=0.0,
        w_phs=0.0,
        output="full",
    )


def _rel(a: torch.Tensor | float, b: torch.Tensor | float) -> float:
    a, b = float(a), float(b)
    return abs(a - b) / abs(b)


def test_matches_auraloss_on_speech_pairs(speech_pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    theirs = _auraloss()
    ours = MultiResolutionSTFT()
    worst = 0.0
    for label, ref, gen in speech_pairs:
        r = torch.tensor(ref, dtype=torch.float32)[None, None]
        g = torch.tensor(gen, dtype=torch.float32)[None, None]
        total, sc_list, log_list, _, _ = theirs(g, r)
        out = ours(g, r)
        assert isinstance(out, STFTDistance)
        sc_ref = sum(float(v) for v in sc_list) / len(sc_list)
        log_ref = sum(float(v) for v in log_list) / len(log_list)
        for got, want in ((out.sc, sc_ref), (out.logmag, log_ref), (out.total, total)):
            worst = max(worst, _rel(got, want))
            assert _rel(got, want) < 1e-4, (label, float(got), float(want))
    assert worst < 1e-4


def test_batch_mean_matches_auraloss(speech_pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    n = min(len(ref) for _, ref, _ in speech_pairs)
    refs = torch.tensor(np.stack([ref[:n] for _, ref, _ in speech_pairs]), dtype=torch.float32)[:, None]
    gens = torch.tensor(np.stack([gen[:n] for _, _, gen in speech_pairs]), dtype=torch.float32)[:, None]
    total = _auraloss()(gens, refs)[0]
    out = MultiResolutionSTFT()(gens, refs)
    assert _rel(out.total, total) < 1e-4


def test_reduction_none_gives_per_item_values(speech_pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    n = min(len(ref) for _, ref, _ in speech_pairs)
    refs = torch.tensor(np.stack([ref[:n] for _, ref, _ in speech_pairs]), dtype=torch.float64)
    gens = torch.tensor(np.stack([gen[:n] for _, _, gen in speech_pairs]), dtype=torch.float64)
    per_item = MultiResolutionSTFT(reduction="none").double()(gens, refs)
    assert per_item.total.shape == (len(speech_pairs),)
    single = MultiResolutionSTFT().double()
    for i in range(len(speech_pairs)):
        one = single(gens[i], refs[i])
        assert float(per_item.sc[i]) == pytest.approx(float(one.sc), rel=1e-10)
        assert float(per_item.logmag[i]) == pytest.approx(float(one.logmag), rel=1e-10)
        assert mrstft_distance(refs[i].numpy(), gens[i].numpy(), 22050) == pytest.approx(
            float(one.total), rel=1e-10
        )


def test_identical_is_zero_and_noise_orders(speech_pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
    _, ref, _ = speech_pairs[0]
    assert mrstft_distance(ref, ref, 22050) == pytest.approx(0.0, abs=1e-9)
    values = [mrstft_distance(ref, _noisy(ref, snr), 22050) for snr in (40.0, 20.0, 0.0)]
    assert values[0] < values[1] < values[2], values


def test_is_differentiable_as_a_training_loss() -> None:
    torch.manual_seed(0)
    ref = torch.randn(2, 1, 8192)
    gen = (ref + 0.1 * torch.randn_like(ref)).requires_grad_(True)
    loss = MultiResolutionSTFT()(gen, ref).total
    loss.backward()
    assert gen.grad is not None
    assert torch.isfinite(gen.grad).all() and gen.grad.abs().sum() > 0
    # a gradient step on the waveform lowers the distance
    with torch.no_grad():
        stepped = gen - 1e-3 * gen.grad / gen.grad.abs().max()
    assert float(MultiResolutionSTFT()(stepped, ref).total) < float(loss.detach())


def test_weights_and_custom_resolutions() -> None:
    torch.manual_seed(1)
    ref, gen = torch.randn(4096), torch.randn(4096)
    base = MultiResolutionSTFT()(gen, ref)
    weighted = MultiResolutionSTFT(w_sc=0.5, w_logmag=2.0)(gen, ref)
    assert float(weighted.total) == pytest.approx(0.5 * float(base.sc) + 2.0 * float(base.logmag), rel=1e-6)
    small = MultiResolutionSTFT([(256, 64, 256)])
    assert small.min_length == 129
    assert float(small(gen, ref).total) > 0


def test_half_precision_input_is_computed_in_float32() -> None:
    torch.manual_seed(2)
    ref, gen = torch.randn(2, 8192), torch.randn(2, 8192)
    full = MultiResolutionSTFT()(gen, ref)
    half = MultiResolutionSTFT()(gen.bfloat16(), ref.bfloat16())
    assert half.total.dtype == torch.float32
    assert float(half.total) == pytest.approx(float(full.total), rel=2e-2)


def test_rejects_bad_input() -> None:
    module = MultiResolutionSTFT()
    with pytest.raises(ValueError, match="shapes differ"):
        module(torch.zeros(4096), torch.zeros(4000))
    with pytest.raises(ValueError, match="needs >= 1025"):
        module(torch.zeros(1000), torch.zeros(1000))
    with pytest.raises(ValueError, match="mono"):
        module(torch.zeros(2, 2, 4096), torch.zeros(2, 2, 4096))
    with pytest.raises(ValueError, match="invalid STFT resolution"):
        MultiResolutionSTFT([(512, 0, 512)])
    with pytest.raises(ValueError, match="trim them"):
        mrstft_distance(np.zeros(4096), np.zeros(4000), 22050)
    with pytest.raises(ValueError, match=r"0\.045 s at 22050 Hz"):
        mrstft_distance(np.zeros(1000), np.zeros(1000), 22050)
