"""The one log-mel spectrogram of ganpipe.

Preprocessing, training losses, evaluation and the registered model all compute mels with
:class:`MelSpectrogram`; its :class:`MelConfig` is saved next to the features and travels with every
checkpoint and model, so a mismatch can be detected (:meth:`MelConfig.diff`).

Framing / padding rule (what makes audio and mel segments line up):
    the waveform is reflect-padded by ``(n_fft - hop_length) // 2`` samples on the left and
    ``n_fft - hop_length - left`` on the right, then framed without centering. A waveform of ``T``
    samples gives exactly ``T // hop_length`` frames, and frame ``i`` is centred on sample
    ``i * hop_length + hop_length / 2``: audio samples ``[i*hop, (i+1)*hop)`` belong to frame ``i``.
    Cut audio at multiples of ``hop_length`` and the matching mel slice is ``[start // hop,
    end // hop)``. (This is the HiFi-GAN convention, ``framing: "hifigan"``, the default.)

    ``framing: "jik876"`` is the same padding applied to the whole waveform, as jik876/hifi-gan's
    ``inference.py`` computes an utterance's mel: the samples after the last full hop are not cropped
    and reach the last frame (same frame count; only the last frame can differ).

    ``framing: "center"`` is librosa's / ``torch.stft(center=True)``'s framing, which the
    ParallelWaveGAN toolkit's features use (kept for models imported from it): the whole waveform is
    reflect-padded by ``n_fft // 2`` on both sides, giving ``T // hop_length + 1`` frames, frame ``i``
    centred on sample ``i * hop_length`` (:meth:`MelConfig.num_frames` gives the count either way).

Filterbank: Slaney-style mel scale with Slaney area normalisation (librosa's default), built by
torchaudio; ``mel_scale: "htk"`` and ``mel_norm: "none"`` give torchaudio's ``MelSpectrogram``
defaults instead (HTK scale, filters of peak 1), the mel of models imported from Vocos.
Magnitude: ``sqrt(re^2 + im^2 + stft_eps)`` (``stft_eps`` 1e-9 by default; 0 = the plain
``|X|`` of the ParallelWaveGAN toolkit). Compression: ``log(max(mel, clamp))`` in the
configured base. Optional per-bin mean/variance normalisation uses statistics from the training
split (``features/stats.npz``).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import torch
import torchaudio

FRAMINGS = ("hifigan", "jik876", "center")
MEL_SCALES = ("slaney", "htk")  # torchaudio.functional.melscale_fbanks(mel_scale=)
MEL_NORMS = ("slaney", "none")  # Slaney area normalisation of each filter, or none (peak 1)


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_base: str = "e"  # "e" or "10"
    clamp: float = 1e-5
    normalize: str = "none"  # "none" or "meanvar"
    # Added for imported models; the defaults are the behaviour of every file written before them.
    framing: str = "hifigan"  # "hifigan", "jik876" (T // hop frames) or "center" (T // hop + 1, librosa's)
    stft_eps: float = 1e-9  # added to |X|^2 under the square root
    mel_scale: str = "slaney"  # "slaney" (librosa's default) or "htk" (torchaudio's default, Vocos')
    mel_norm: str = "slaney"  # "slaney" (area-normalised filters) or "none" (torchaudio's default, Vocos')

    def __post_init__(self) -> None:
        for name, allowed in (("framing", FRAMINGS), ("mel_scale", MEL_SCALES), ("mel_norm", MEL_NORMS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"mel {name} must be one of {list(allowed)}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown mel parameter(s): {', '.join(unknown)}")
        return cls(**data)

    def diff(self, other: MelConfig) -> dict[str, tuple[Any, Any]]:
        """Parameters whose values differ: ``{name: (self_value, other_value)}``."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k]}

    def num_frames(self, num_samples: int) -> int:
        return num_samples // self.hop_length + (1 if self.framing == "center" else 0)


class MelSpectrogram(torch.nn.Module):
    """Waveform ``(..., T)`` -> log-mel ``(..., n_mels, config.num_frames(T))``, float32.

    Differentiable (used in the training losses). Mean/variance normalisation is applied when
    ``stats`` (``mean``, ``std`` of shape ``(n_mels,)``) are given and ``config.normalize`` is
    ``"meanvar"``.
    """

    def __init__(self, config: MelConfig, stats: dict[str, Any] | None = None):
        super().__init__()
        self.config = config
        c = config
        fb = torchaudio.functional.melscale_fbanks(
            n_freqs=c.n_fft // 2 + 1, f_min=c.fmin, f_max=c.fmax, n_mels=c.n_mels,
            sample_rate=c.sample_rate, norm=None if c.mel_norm == "none" else c.mel_norm, mel_scale=c.mel_scale,
        )  # (n_freqs, n_mels)
        self.register_buffer("mel_basis", fb.T.contiguous(), persistent=False)  # (n_mels, n_freqs)
        # Bins above the highest non-zero filter contribute nothing: skip them (e.g. 372 of 513).
        nonzero = torch.nonzero(fb.abs().sum(dim=1) > 0)
        self._n_bins = int(nonzero.max().item()) + 1 if len(nonzero) else fb.shape[0]
        self.register_buffer("mel_basis_t", fb[: self._n_bins].contiguous(), persistent=False)
        self._sparse_basis: torch.Tensor | None = None
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)
        self._crop = c.framing == "hifigan"
        if c.framing == "center":
            self._pad_left = self._pad_right = c.n_fft // 2
        else:
            self._pad_left = (c.n_fft - c.hop_length) // 2
            self._pad_right = c.n_fft - c.hop_length - self._pad_left
        self._log_scale = 1.0 / torch.log(torch.tensor(10.0)).item() if c.log_base == "10" else 1.0
        mean = torch.zeros(c.n_mels)
        std = torch.ones(c.n_mels)
        self.normalized = False
        if stats is not None and c.normalize == "meanvar":
            mean = torch.as_tensor(stats["mean"], dtype=torch.float32)
            std = torch.as_tensor(stats["std"], dtype=torch.float32).clamp_min(1e-5)
            self.normalized = True
        self.register_buffer("mean", mean.view(-1, 1), persistent=False)
        self.register_buffer("std", std.view(-1, 1), persistent=False)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the framing padding (see module doc); ``hifigan`` framing first crops ``(B, T)`` to a
        multiple of hop (``jik876`` and ``center`` framing pad every sample)."""
        hop = self.config.hop_length
        usable = (x.shape[-1] // hop) * hop if self._crop else x.shape[-1]
        x = x[..., :usable]
        mode = "reflect" if usable > max(self._pad_left, self._pad_right) else "constant"
        return torch.nn.functional.pad(x.unsqueeze(1), (self._pad_left, self._pad_right), mode=mode).squeeze(1)

    def _stft_magnitude(self, padded: torch.Tensor, n_bins: int | None = None) -> torch.Tensor:
        """``(B, T_padded)`` -> magnitude ``(B, frames, n_bins)`` (frame-major, contiguous).

        Framing by ``unfold`` + ``rfft`` is the same STFT as ``torch.stft(center=False)`` but keeps
        frames contiguous, which makes the following mel projection a plain GEMM (faster on CPU).
        """
        c = self.config
        frames = padded.unfold(-1, c.n_fft, c.hop_length)
        if c.win_length == c.n_fft:
            frames = frames * self.window
        else:  # centred window shorter than the FFT, as torch.stft does it
            left = (c.n_fft - c.win_length) // 2
            frames = frames[..., left:left + c.win_length] * self.window
        spec = torch.fft.rfft(frames, n=c.n_fft)
        if n_bins is not None:
            spec = spec[..., :n_bins]
        return torch.sqrt(spec.real.square() + spec.imag.square() + c.stft_eps)

    def _compress(self, mag: torch.Tensor) -> torch.Tensor:
        """Frame-major magnitude ``(B, frames, bins)`` -> log-mel ``(B, n_mels, frames)``."""
        return self._log(torch.matmul(mag, self.mel_basis_t).transpose(-1, -2))

    def _log(self, mel: torch.Tensor) -> torch.Tensor:
        logmel = torch.log(torch.clamp(mel, min=self.config.clamp))
        if self._log_scale != 1.0:
            logmel = logmel * self._log_scale
        if self.normalized:
            logmel = (logmel - self.mean) / self.std
        return logmel

    def _compress_sparse(self, mag: torch.Tensor) -> torch.Tensor:
        """Inference-only CPU path of :meth:`_compress` for one ``(frames, bins)`` magnitude.

        Each mel filter covers a few neighbouring bins (~2 non-zeros per bin), so a CSR product
        does a fraction of the dense GEMM's work; results agree to float rounding (tested).
        """
        if self._sparse_basis is None:
            import warnings

            with warnings.catch_warnings():  # "sparse CSR support is in beta" notice
                warnings.simplefilter("ignore")
                self._sparse_basis = self.mel_basis_t.T.contiguous().to_sparse_csr()
        return self._log(torch.sparse.mm(self._sparse_basis, mag.T))

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear STFT magnitude ``(..., n_fft // 2 + 1, num_frames(T))`` with the framing rule."""
        shape = wav.shape
        mag = self._stft_magnitude(self._pad(wav.reshape(-1, shape[-1]).float())).transpose(-1, -2)
        return mag.reshape(*shape[:-1], mag.shape[-2], mag.shape[-1])

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        shape = wav.shape
        mag = self._stft_magnitude(self._pad(wav.reshape(-1, shape[-1]).float()), self._n_bins)
        mel = self._compress(mag)
        return mel.reshape(*shape[:-1], mel.shape[-2], mel.shape[-1])

    @torch.inference_mode()
    def batch(self, wavs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Log-mels of variable-length 1-D waveforms; each result equals ``self(wav)`` alone.

        On the GPU the waveforms (padded by the framing rule) are zero-padded to a common length
        and computed in one batched STFT; only frames lying entirely inside an utterance's own
        padded signal are kept. On the CPU they are computed one by one (cache-friendlier).
        """
        if not wavs:
            return []
        device = self.window.device
        padded = [self._pad(w.reshape(1, -1).float().to(device)) for w in wavs]
        if device.type == "cpu":  # per utterance: stays in cache, measured faster than stacking
            return [self._compress_sparse(self._stft_magnitude(p, self._n_bins)[0]) for p in padded]
        longest = max(p.shape[-1] for p in padded)
        stacked = torch.cat([torch.nn.functional.pad(p, (0, longest - p.shape[-1])) for p in padded])
        mels = self._compress(self._stft_magnitude(stacked, self._n_bins))
        return [mels[i, :, : self.config.num_frames(w.shape[-1])] for i, w in enumerate(wavs)]
