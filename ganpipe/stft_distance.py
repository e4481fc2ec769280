"""Multi-resolution STFT distance: the GAN-vocoder auxiliary loss and an evaluation metric.

For each resolution ``(n_fft, hop, win)`` (default: (1024, 120, 600), (2048, 240, 1200),
(512, 50, 240), Hann window) the magnitude spectrogram is
``|STFT|`` = ``sqrt(max(re^2 + im^2, eps))`` (``eps = 1e-8``: the clamp auraloss uses), with
``torch.stft(center=True, pad_mode="reflect")`` framing, and two terms are computed:

* spectral convergence ``||S_ref - S_gen||_F / ||S_ref||_F``;
* log-magnitude distance ``mean |log S_ref - log S_gen|``.

Each term is averaged over the resolutions; ``total = w_sc * sc + w_logmag * logmag``. This is
``auraloss.freq.MultiResolutionSTFTLoss`` with its defaults (``w_sc = w_log_mag = 1``, no linear
magnitude / phase terms, ``output="full"`` giving the per-resolution terms), and the loss of
Yamamoto et al. (Parallel WaveGAN).

Batches: with ``reduction="mean"`` (training) the Frobenius norms and the mean run over the whole
batch, as in auraloss; ``reduction="none"`` gives one value per item (evaluation).
Everything is differentiable with respect to ``gen`` (and ``ref``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch

__all__ = ["DEFAULT_RESOLUTIONS", "MultiResolutionSTFT", "STFTDistance", "mrstft_distance"]

#: (n_fft, hop_length, win_length) of each resolution
DEFAULT_RESOLUTIONS: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))

Reduction = Literal["mean", "none"]


class STFTDistance(NamedTuple):
    """Resolution-averaged terms: scalars (``reduction="mean"``) or ``(B,)`` tensors (``"none"``)."""

    sc: torch.Tensor
    logmag: torch.Tensor
    total: torch.Tensor


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(T,)``, ``(B, T)`` or ``(B, 1, T)`` -> ``(B, T)``."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected mono (B, 1, T), got shape {tuple(x.shape)}")
        x = x[:, 0]
    elif x.dim() == 1:
        x = x.unsqueeze(0)
    elif x.dim() != 2:
        raise ValueError(f"{name}: expected (T,), (B, T) or (B, 1, T), got shape {tuple(x.shape)}")
    return x


class MultiResolutionSTFT(torch.nn.Module):
    """``forward(gen, ref) -> STFTDistance(sc, logmag, total)``.

    ``gen`` and ``ref``: waveforms of the same shape, ``(T,)``, ``(B, T)`` or ``(B, 1, T)``, each
    at least ``max(n_fft) // 2 + 1`` samples long (reflect padding).
    """

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS,
        *,
        eps: float = 1e-8,
        w_sc: float = 1.0,
        w_logmag: float = 1.0,
        reduction: Reduction = "mean",
    ):
        super().__init__()
        if not resolutions:
            raise ValueError("at least one STFT resolution is needed")
        for n_fft, hop, win in resolutions:
            if not (0 < hop and 0 < win <= n_fft):
                raise ValueError(f"invalid STFT resolution (n_fft={n_fft}, hop={hop}, win={win})")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        self.resolutions = tuple((int(n), int(h), int(w)) for n, h, w in resolutions)
        self.eps = float(eps)
        self.w_sc = float(w_sc)
        self.w_logmag = float(w_logmag)
        self.reduction: Reduction = reduction
        for i, (_, _, win) in enumerate(self.resolutions):
            self.register_buffer(f"window_{i}", torch.hann_window(win), persistent=False)

    @property
    def min_length(self) -> int:
        """Shortest usable input (samples): reflect padding needs more than ``n_fft // 2``."""
        return max(n for n, _, _ in self.resolutions) // 2 + 1

    def _magnitude(self, x: torch.Tensor, index: int) -> torch.Tensor:
        n_fft, hop, win = self.resolutions[index]
        window = getattr(self, f"window_{index}")
        spec = torch.stft(
            x,
            n_fft=n_fft,
            hop_length=hop,
            win_length=win,
            window=window.to(device=x.device, dtype=x.dtype),
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        return torch.sqrt(torch.clamp(spec.real.pow(2) + spec.imag.pow(2), min=self.eps))

    def _terms(self, s_ref: torch.Tensor, s_gen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_diff = torch.abs(torch.log(s_ref) - torch.log(s_gen))
        if self.reduction == "mean":  # norms and mean over the whole batch
            return torch.linalg.vector_norm(s_ref - s_gen) / torch.linalg.vector_norm(s_ref), log_diff.mean()
        dims = (-2, -1)
        sc = torch.linalg.vector_norm(s_ref - s_gen, dim=dims) / torch.linalg.vector_norm(s_ref, dim=dims)
        return sc, log_diff.mean(dim=dims)

    def forward(self, gen: torch.Tensor, ref: torch.Tensor) -> STFTDistance:
        gen_b = _as_batch(gen, "gen")
        ref_b = _as_batch(ref, "ref")
        if gen_b.shape != ref_b.shape:
            raise ValueError(f"gen and ref shapes differ: {tuple(gen.shape)} vs {tuple(ref.shape)}")
        if gen_b.shape[-1] < self.min_length:
            raise ValueError(
                f"signals have {gen_b.shape[-1]} samples; the STFT distance needs >= {self.min_length}"
            )
        if gen_b.dtype in (torch.float16, torch.bfloat16):  # STFTs in half precision are not reliable
            gen_b, ref_b = gen_b.float(), ref_b.float()
        sc_terms, log_terms = [], []
        for i in range(len(self.resolutions)):
            sc, logmag = self._terms(self._magnitude(ref_b, i), self._magnitude(gen_b, i))
            sc_terms.append(sc)
            log_terms.append(logmag)
        sc_mean = torch.stack(sc_terms).mean(dim=0)
        log_mean = torch.stack(log_terms).mean(dim=0)
        return STFTDistance(sc_mean, log_mean, self.w_sc * sc_mean + self.w_logmag * log_mean)


_EVAL_MODULES: dict[tuple[tuple[int, int, int], ...], MultiResolutionSTFT] = {}


def mrstft_distance(
    ref: np.ndarray,
    gen: np.ndarray,
    sr: int,
    resolutions: Sequence[tuple[int, int, int]] = DEFAULT_RESOLUTIONS,
) -> float:
    """Per-utterance MR-STFT distance ``sc + logmag`` (float64) between two 1-D waveforms.

    The resolutions are in samples and do not depend on ``sr`` (the training loss uses the same
    ones at every rate); ``sr`` only serves the error messages. Both signals must have the same
    length (trim first, see :func:`ganpipe.metrics.score_pair`).
    """
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    ref_a = np.asarray(ref, dtype=np.float64)
    gen_a = np.asarray(gen, dtype=np.float64)
    if ref_a.ndim != 1 or gen_a.ndim != 1:
        raise ValueError(f"ref and gen must be 1-D waveforms, got shapes {ref_a.shape} and {gen_a.shape}")
    if ref_a.shape != gen_a.shape:
        raise ValueError(
            f"ref has {ref_a.shape[0]} samples, gen has {gen_a.shape[0]}: trim them to one length first"
        )
    key = tuple((int(n), int(h), int(w)) for n, h, w in resolutions)
    module = _EVAL_MODULES.get(key)
    if module is None:
        module = _EVAL_MODULES.setdefault(key, MultiResolutionSTFT(key).double())
    if ref_a.shape[0] < module.min_length:
        raise ValueError(
            f"signals have {ref_a.shape[0]} samples ({ref_a.shape[0] / sr:.3f} s at {sr} Hz); "
            f"the MR-STFT distance needs at least {module.min_length}"
        )
    with torch.no_grad():
        out = module(torch.from_numpy(gen_a), torch.from_numpy(ref_a))
    return float(out.total)
