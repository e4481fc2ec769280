"""SpecGAN's audio representation (Donahue et al., ICLR 2019): 128 x 128 normalised log-magnitude
spectrograms of 16384-sample clips at 16 kHz, and Griffin-Lim inversion back to audio.

Forward: STFT (n_fft 256, hop 128, Hann) -> ``log(|X| + 1e-6)`` -> drop the Nyquist bin (129 ->
128 bins) and keep 128 frames -> subtract the per-bin mean, divide by the per-bin std, divide by 3
and clip to [-1, 1] (i.e. clip at 3 std). Inverse: undo the scaling (the dropped Nyquist bin is set
to its mean) -> ``exp`` -> Griffin-Lim (16 iterations, zero initial phase, like the reference).

The per-bin statistics come from training audio (:meth:`SpecGANSpectrogram.fit_statistics`) and
are buffers, so they travel with the generator's state dict.

Framing differs from the reference in one detail: frames are centred (``center=True``) so that
torchaudio's Griffin-Lim, which assumes centred frames, inverts them without a half-window shift;
the reference frames from sample 0 with end padding. Both give 128 frames for 16384 samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn


class SpecGANSpectrogram(nn.Module):
    def __init__(
        self,
        n_fft: int = 256,
        hop_length: int = 128,
        n_frames: int = 128,
        log_eps: float = 1e-6,
        clip_std: float = 3.0,
        griffin_lim_iters: int = 16,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_frames = n_frames
        self.n_bins = n_fft // 2  # Nyquist bin dropped
        self.log_eps = log_eps
        self.clip_std = clip_std
        self.audio_length = n_frames * hop_length
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mean", torch.zeros(n_fft // 2 + 1))
        self.register_buffer("std", torch.ones(n_fft // 2 + 1))
        self.register_buffer("fitted", torch.tensor(False))
        self.griffin_lim = torchaudio.transforms.GriffinLim(
            n_fft=n_fft, n_iter=griffin_lim_iters, hop_length=hop_length, power=1.0,
            length=self.audio_length, rand_init=False,
        )

    def log_magnitude(self, wav: Tensor) -> Tensor:
        """``(B, 1, audio_length)`` -> ``(B, n_fft / 2 + 1, n_frames)`` natural-log magnitudes."""
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected (B, 1, T), got {tuple(wav.shape)}")
        if wav.shape[-1] != self.audio_length:
            raise ValueError(f"expected {self.audio_length} samples, got {wav.shape[-1]}")
        spec = torch.stft(
            wav.squeeze(1), self.n_fft, self.hop_length, window=self.window, center=True, return_complex=True
        )
        return torch.log(spec.abs()[..., : self.n_frames] + self.log_eps)

    @torch.no_grad()
    def fit_statistics(self, wavs: Tensor) -> None:
        """Set the per-bin mean and std from training clips ``(N, 1, audio_length)``."""
        log_mag = self.log_magnitude(wavs)
        self.mean.copy_(log_mag.mean(dim=(0, 2)))
        self.std.copy_(log_mag.std(dim=(0, 2)).clamp_min(1e-8))
        self.fitted.fill_(True)

    def _require_fitted(self) -> None:
        if not bool(self.fitted):
            raise RuntimeError("SpecGAN spectrogram statistics are not set; call fit_statistics() first")

    def normalize(self, wav: Tensor) -> Tensor:
        """Audio ``(B, 1, audio_length)`` -> SpecGAN input ``(B, 1, n_bins, n_frames)`` in [-1, 1]."""
        self._require_fitted()
        log_mag = self.log_magnitude(wav)
        scaled = (log_mag - self.mean[:, None]) / self.std[:, None] / self.clip_std
        return scaled[:, : self.n_bins].clamp(-1.0, 1.0).unsqueeze(1)

    def denormalize(self, spectrogram: Tensor) -> Tensor:
        """SpecGAN output ``(B, 1, n_bins, n_frames)`` -> magnitudes ``(B, n_bins + 1, n_frames)``."""
        self._require_fitted()
        scaled = F.pad(spectrogram.squeeze(1), (0, 0, 0, 1))  # Nyquist bin at its mean
        return torch.exp(scaled * self.clip_std * self.std[:, None] + self.mean[:, None])

    def to_audio(self, spectrogram: Tensor) -> Tensor:
        """SpecGAN output ``(B, 1, n_bins, n_frames)`` -> audio ``(B, 1, audio_length)`` by Griffin-Lim."""
        magnitude = self.denormalize(spectrogram)
        # centred framing of audio_length samples has one frame more than we keep: repeat the last
        magnitude = torch.cat([magnitude, magnitude[..., -1:]], dim=-1)
        return self.griffin_lim(magnitude).unsqueeze(1)
