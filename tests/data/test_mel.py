"""The one mel (ganpipe/mel.py) equals librosa's on real speech, aligns frames with hop multiples and round-trips its config."""

import librosa
import numpy as np
import soundfile as sf
import torch

from ganpipe.mel import MelConfig, MelSpectrogram


def librosa_logmel(y: np.ndarray, c: MelConfig) -> np.ndarray:
    """Reference: the same definition written with librosa (HiFi-GAN-style padding, no centering)."""
    pad = (c.n_fft - c.hop_length) // 2
    y = y[: len(y) // c.hop_length * c.hop_length]
    y = np.pad(y, (pad, c.n_fft - c.hop_length - pad), mode="reflect")
    spec = librosa.stft(y, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                        window="hann", center=False)
    mag = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    mel = np.maximum(basis @ mag, c.clamp)
    return np.log10(mel) if c.log_base == "10" else np.log(mel)


def test_matches_librosa_reference_on_real_speech(lj_wavs):
    for cfg in (MelConfig(), MelConfig(fmin=80.0, fmax=7600.0, log_base="10", clamp=1e-10)):
        mel = MelSpectrogram(cfg)
        for path in lj_wavs[:4]:
            y, sr = sf.read(path, dtype="float32")
            assert sr == cfg.sample_rate
            ours = mel(torch.from_numpy(y)).numpy()
            ref = librosa_logmel(y, cfg)
            assert ours.shape == ref.shape == (cfg.n_mels, len(y) // cfg.hop_length)
            # compare where the mel is above the clamp floor (log of tiny values amplifies rounding)
            assert np.max(np.abs(ours - ref)) < 2e-3, path.name


def test_frames_align_with_hop_multiples(lj_wavs):
    c = MelConfig()
    mel = MelSpectrogram(c)
    y = torch.from_numpy(sf.read(lj_wavs[0], dtype="float32")[0])
    full = mel(y)
    assert full.shape[-1] == len(y) // c.hop_length
    a, b = 40, 120  # cut audio at multiples of hop: frames [a, b) except the padded edges
    seg = mel(y[a * c.hop_length: b * c.hop_length])
    assert seg.shape[-1] == b - a
    edge = c.n_fft // c.hop_length
    assert torch.allclose(seg[:, edge:-edge], full[:, a + edge: b - edge], atol=1e-5)


def test_batch_equals_single_and_batch_dims(lj_wavs):
    mel = MelSpectrogram(MelConfig())
    wavs = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in lj_wavs[:3]]
    for w, m in zip(wavs, mel.batch(wavs)):
        assert torch.allclose(m, mel(w), atol=1e-5)
    x = torch.randn(2, 1, 4096)
    assert mel(x).shape == (2, 1, 80, 16)
    assert mel.magnitude(x).shape == (2, 1, 513, 16)


def test_differentiable_for_losses():
    mel = MelSpectrogram(MelConfig())
    x = torch.randn(1, 8192, requires_grad=True)
    mel(x).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_meanvar_normalisation_uses_stats():
    c = MelConfig(normalize="meanvar")
    stats = {"mean": np.full(80, -5.0, np.float32), "std": np.full(80, 2.0, np.float32)}
    x = torch.randn(4096) * 0.1
    raw = MelSpectrogram(MelConfig())(x)
    norm = MelSpectrogram(c, stats)(x)
    assert torch.allclose(norm, (raw + 5.0) / 2.0, atol=1e-5)


def test_config_roundtrip_and_diff():
    a = MelConfig()
    b = MelConfig.from_dict({**a.to_dict(), "fmax": 7600.0, "n_mels": 64})
    assert MelConfig.from_dict(a.to_dict()) == a
    assert a.diff(b) == {"fmax": (8000.0, 7600.0), "n_mels": (80, 64)}
    try:
        MelConfig.from_dict({"n_fft": 1024, "nfft": 1})
    except ValueError as exc:
        assert "nfft" in str(exc)
    else:
        raise AssertionError("unknown key accepted")


def test_filterbank_options_default_to_the_old_mel():
    """mel_scale / mel_norm (added for Vocos): a dict written before them loads, equals the defaults
    and computes the same Slaney filterbank; a bad value names the field and the allowed values."""
    import pytest

    old = {"sample_rate": 22050, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "n_mels": 80, "fmin": 0.0,
           "fmax": 8000.0, "log_base": "e", "clamp": 1e-5, "normalize": "none", "framing": "hifigan", "stft_eps": 1e-9}
    c = MelConfig.from_dict(old)
    assert c == MelConfig() and (c.mel_scale, c.mel_norm) == ("slaney", "slaney") and not MelConfig().diff(c)
    slaney = torch.from_numpy(librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0.0, fmax=8000.0))
    assert torch.allclose(MelSpectrogram(c).mel_basis, slaney.float(), atol=1e-6)
    for field, value in (("mel_scale", "bark"), ("mel_norm", "area")):
        with pytest.raises(ValueError, match=f"mel {field} must be one of"):
            MelConfig(**{field: value})


def test_htk_unnormalised_mel_is_torchaudios_melspectrogram(lj_wavs):
    """mel_scale htk + mel_norm none + framing center + stft_eps 0 = torchaudio.transforms.MelSpectrogram
    (power 1, its defaults: HTK scale, no area normalisation) on real speech."""
    import torchaudio

    y, sr = sf.read(lj_wavs[0], dtype="float32")
    wav = torch.from_numpy(y)
    c = MelConfig(sample_rate=sr, n_fft=1024, hop_length=256, win_length=1024, n_mels=100, fmin=0.0,
                  fmax=float(sr // 2), clamp=1e-7, framing="center", stft_eps=0.0, mel_scale="htk", mel_norm="none")
    ref = torchaudio.transforms.MelSpectrogram(sample_rate=sr, n_fft=1024, hop_length=256, n_mels=100, power=1,
                                               norm=None, mel_scale="htk")
    ours = MelSpectrogram(c)
    assert torch.allclose(ours.mel_basis, ref.mel_scale.fb.T, atol=0, rtol=0)
    expected = torch.log(torch.clamp(ref(wav), min=1e-7))
    got = ours(wav)
    assert got.shape == expected.shape == (100, c.num_frames(len(y)))
    assert float((got - expected).abs().max()) <= 1e-4
