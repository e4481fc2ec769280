"""Anti-aliased periodic activations (BigVGAN, Lee et al. 2023): Snake / SnakeBeta applied at twice the
rate — upsample x2 with a Kaiser-windowed sinc low-pass, the activation, low-pass and decimate x2 —
so the harmonics the non-linearity makes above the original Nyquist are filtered out instead of
folding back as aliases (the design of StyleGAN3's alias-free layers, in 1-D).

Filters (fixed, not trained; rebuilt at construction, not stored in state dicts): ``taps`` (12)
Kaiser-windowed sinc taps, cutoff ``0.5 / ratio`` of the (upsampled) rate, transition half-width
``0.6 / ratio``, Kaiser beta from the attenuation formula of Kaiser (1974), normalised to unit DC
gain; edges padded by repetition. The arithmetic is BigVGAN's torch path (its optional CUDA kernel
fuses the same three steps); ``tests/reference/test_reference_bigvgan.py`` checks it against ``bigvgan==2.4.1``.

Snake: ``x + sin^2(alpha x) / alpha``; SnakeBeta: ``x + sin^2(alpha x) / beta``, one ``alpha``
(and ``beta``) per channel, stored as logarithms when ``log_scale`` (initialised to 0, i.e. 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_EPS = 1e-9  # keeps 1 / alpha finite where alpha reaches 0


def kaiser_sinc_lowpass(cutoff: float, half_width: float, taps: int) -> Tensor:
    """``(taps,)`` low-pass FIR: sinc at ``cutoff`` (cycles per sample) under a Kaiser window whose
    beta gives the stop-band attenuation a transition of ``2 * half_width`` allows; sum 1."""
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95  # dB (Kaiser's estimate)
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21.0) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    # centred on the middle of the taps: half-sample offsets for an even count
    t = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    h = 2 * cutoff * window * torch.sinc(2 * cutoff * t)
    return h / h.sum()


def _depthwise_lowpass(channels: int, ratio: int, taps: int) -> Tensor:
    """The low-pass as a depthwise conv weight ``(channels, 1, taps)`` (a constant the ONNX export keeps)."""
    return kaiser_sinc_lowpass(0.5 / ratio, 0.6 / ratio, taps).view(1, 1, -1).repeat(channels, 1, 1)


class Upsample(nn.Module):
    """x ``ratio`` by zero-stuffing + the low-pass (a transposed depthwise conv), gain ``ratio``."""

    def __init__(self, channels: int, ratio: int = 2, taps: int = 12) -> None:
        super().__init__()
        self.channels, self.ratio, self.taps = channels, ratio, taps
        self.pad = taps // ratio - 1
        self.crop_left = self.pad * ratio + (taps - ratio) // 2
        self.crop_right = self.pad * ratio + (taps - ratio + 1) // 2
        self.register_buffer("filter", _depthwise_lowpass(channels, ratio, taps), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv_transpose1d(F.pad(x, (self.pad, self.pad), mode="replicate"), self.filter, stride=self.ratio,
                               groups=self.channels)
        return self.ratio * y[..., self.crop_left:y.shape[-1] - self.crop_right]


class Downsample(nn.Module):
    """The low-pass, then every ``ratio``-th sample (a strided depthwise conv)."""

    def __init__(self, channels: int, ratio: int = 2, taps: int = 12) -> None:
        super().__init__()
        self.channels, self.ratio = channels, ratio
        self.pad_left, self.pad_right = taps // 2 - (1 - taps % 2), taps // 2
        self.register_buffer("filter", _depthwise_lowpass(channels, ratio, taps), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv1d(F.pad(x, (self.pad_left, self.pad_right), mode="replicate"), self.filter, stride=self.ratio,
                        groups=self.channels)


class Snake(nn.Module):
    """``x + sin^2(alpha x) / alpha`` per channel (Ziyin et al. 2020)."""

    def __init__(self, channels: int, log_scale: bool = True) -> None:
        super().__init__()
        self.log_scale = log_scale
        self.alpha = nn.Parameter(torch.zeros(channels) if log_scale else torch.ones(channels))

    def _scale(self, p: Tensor) -> Tensor:
        p = p.view(1, -1, 1)
        return torch.exp(p) if self.log_scale else p

    def forward(self, x: Tensor) -> Tensor:
        alpha = self._scale(self.alpha)
        return x + torch.sin(x * alpha).pow(2) / (alpha + _EPS)


class SnakeBeta(Snake):
    """``x + sin^2(alpha x) / beta``: frequency and magnitude per channel apart (BigVGAN)."""

    def __init__(self, channels: int, log_scale: bool = True) -> None:
        super().__init__(channels, log_scale)
        self.beta = nn.Parameter(torch.zeros(channels) if log_scale else torch.ones(channels))

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.sin(x * self._scale(self.alpha)).pow(2) / (self._scale(self.beta) + _EPS)


ACTIVATIONS = {"snake": Snake, "snakebeta": SnakeBeta}


class AntiAliasedActivation(nn.Module):
    """Upsample x2 -> periodic activation -> low-pass and decimate x2 (same length out as in)."""

    def __init__(self, activation: Snake, ratio: int = 2, taps: int = 12) -> None:
        super().__init__()
        channels = activation.alpha.numel()
        self.upsample = Upsample(channels, ratio, taps)
        self.act = activation
        self.downsample = Downsample(channels, ratio, taps)

    def forward(self, x: Tensor) -> Tensor:
        return self.downsample(self.act(self.upsample(x)))
