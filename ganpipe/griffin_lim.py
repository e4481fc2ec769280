"""Griffin-Lim from the project mel: the signal-processing floor every vocoder should beat.

The evaluate stage gives each utterance's mel -- the very input the generator gets, with the
model's mel configuration and statistics -- to :class:`GriffinLimVocoder` as well, and scores both
outputs against the same reference. A trained vocoder that does not beat this baseline (lower MCD
and MR-STFT) has learnt less than phase retrieval from the same mel knows without any training.

Inversion, each step undoing one of :class:`ganpipe.mel.MelSpectrogram`'s (torchaudio does the
signal processing):

1. mean/variance normalisation (``normalize: meanvar``, e.g. the pwg preset): ``x * std + mean``;
2. log compression in the configured base (``e`` or ``10``): ``exp`` / ``10 **``;
3. the Slaney mel filterbank: ``torchaudio.transforms.InverseMelScale`` (least squares, negative
   magnitudes set to zero) with the same matrix as the project mel (checked at construction);
4. phase: ``torchaudio.transforms.GriffinLim`` (fast Griffin-Lim, momentum 0.99, ``n_iter``
   iterations, a seeded random initial phase so the result is reproducible), Hann window and the
   project's n_fft / win_length / hop_length.

The project frames without centring (frame ``i`` centred on sample ``i * hop + n_fft // 2 -
(n_fft - hop) // 2``, see ganpipe/mel.py); torch.stft centres frame ``i`` on ``i * hop``, so the
output is delayed by the difference to line up with the reference sample for sample.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torchaudio

from ganpipe.mel import MelConfig, MelSpectrogram


class GriffinLimVocoder:
    """Log-mel ``(n_mels, frames)`` (as :class:`MelSpectrogram` with ``config``/``stats`` makes it)
    -> waveform of ``frames * hop_length`` samples (float32, CPU)."""

    def __init__(self, config: MelConfig, stats: dict[str, Any] | None = None, n_iter: int = 32, seed: int = 0):
        if n_iter < 1:
            raise ValueError(f"Griffin-Lim needs at least one iteration, got n_iter={n_iter}")
        self.config, self.n_iter, self.seed = config, n_iter, seed
        mel = MelSpectrogram(config, stats)
        self.mean = mel.mean if mel.normalized else None  # (n_mels, 1)
        self.std = mel.std if mel.normalized else None
        c = config
        self.inverse_mel = torchaudio.transforms.InverseMelScale(
            n_stft=c.n_fft // 2 + 1, n_mels=c.n_mels, sample_rate=c.sample_rate, f_min=c.fmin, f_max=c.fmax,
            norm="slaney", mel_scale="slaney")
        if not torch.allclose(self.inverse_mel.fb, mel.mel_basis.T, rtol=1e-4, atol=1e-7):
            raise RuntimeError("torchaudio's InverseMelScale filterbank differs from ganpipe.mel's")
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=c.n_fft, n_iter=n_iter, win_length=c.win_length, hop_length=c.hop_length, power=1.0,
            momentum=0.99, rand_init=True)
        self.delay = c.n_fft // 2 - (c.n_fft - c.hop_length) // 2

    def magnitude(self, logmel: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``(n_fft // 2 + 1, frames)`` whose mel approximates ``logmel``."""
        x = torch.as_tensor(np.asarray(logmel) if not isinstance(logmel, torch.Tensor) else logmel)
        x = x.detach().to("cpu", torch.float32)
        if x.ndim != 2 or x.shape[0] != self.config.n_mels:
            raise ValueError(f"expected a log-mel of shape ({self.config.n_mels}, frames), got {tuple(x.shape)}")
        if self.mean is not None:
            x = x * self.std + self.mean
        mel = torch.pow(10.0, x) if self.config.log_base == "10" else torch.exp(x)
        return self.inverse_mel(mel)

    @torch.inference_mode()
    def __call__(self, logmel: np.ndarray | torch.Tensor) -> np.ndarray:
        mag = self.magnitude(logmel)
        n = mag.shape[1] * self.config.hop_length
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            wav = self.griffin_lim(mag)  # (frames - 1) * hop samples, frame i centred on i * hop
        wav = torch.cat([wav.new_zeros(self.delay), wav[: n - self.delay]])
        return torch.nn.functional.pad(wav, (0, n - wav.shape[0])).numpy().astype(np.float32)
