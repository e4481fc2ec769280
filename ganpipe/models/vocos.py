"""Vocos (Siuzdak 2023, gemelo-ai/vocos ``vocos==0.1.0``): a ConvNeXt backbone at the mel frame rate
and an inverse-STFT head, with HiFi-GAN's multi-period discriminator and a multi-resolution
(band-split complex STFT) discriminator.

Generator: 7-tap conv ``n_mels -> dim`` -> LayerNorm -> ``num_layers`` ConvNeXt blocks (depthwise
7-tap conv, LayerNorm, ``dim -> intermediate_dim`` linear, exact GELU, ``-> dim`` linear, a
learned per-channel scale starting at ``1 / num_layers``, residual) -> LayerNorm -> a linear layer
giving ``n_fft / 2 + 1`` log-magnitudes and as many phases per frame -> inverse STFT (Hann window
of ``n_fft``, hop ``hop_length``). ``padding``: ``same`` (Vocos' own ISTFT: ``F`` frames give
``F * hop_length`` samples, ganpipe's framing, the default) or ``center`` (``torch.istft(center=True)``:
``(F - 1) * hop_length`` samples, the framing of the published 24 kHz model's centred mel).

The inverse STFT is written as a matrix product (the inverse real DFT with the synthesis window
folded in) and an overlap-add of ``n_fft / hop_length`` shifted frame slices, divided by the
squared-window envelope: the same numbers as ``torch.fft.irfft`` + fold (Vocos' ``same``) or
``torch.istft`` (``center``) to float rounding, and only MatMul / Pad / Add / Div in an ONNX export
(no complex or FFT operators). When ``hop_length`` does not divide ``n_fft`` the overlap-add is a
transposed convolution with an identity kernel (slower, still exportable).

Sizes of ``vocos.yaml`` (the defaults): dim 512, intermediate 1536, 8 layers, n_fft 1024, hop
256, 100 mels at 24 kHz: 13.5M generator parameters. Initialisation as the reference's backbone:
truncated normal (std 0.02) conv / linear weights, zero biases (the head's linear keeps PyTorch's
default). Speaker conditioning (ganpipe's, not in Vocos): a speaker embedding concatenated to the
mel channels, as for the other vocoders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conditioning_options import SpeakerConditioningOptions
from .discriminator_conditioning import DiscriminatorConditioning, head_output
from .generator_conditioning import concat_label_embedding
from .hifigan import LRELU_SLOPE, PeriodDiscriminator
from .normalization import weight_norm
from .outputs import DiscriminatorOutput, merge_outputs

ISTFT_PADDINGS = ("same", "center")
MAX_MAGNITUDE = 100.0  # the head's clip of exp(log-magnitude), as the reference's
MRD_BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))


@dataclass(frozen=True)
class VocosConfig(SpeakerConditioningOptions):
    n_mels: int = 100
    hop_length: int = 256
    sample_rate: int = 24000
    n_fft: int = 1024  # the head's STFT size (= its window length)
    dim: int = 512
    intermediate_dim: int = 1536
    num_layers: int = 8
    layer_scale_init: float = 0.0  # ConvNeXt layer scale's start; 0 = 1 / num_layers (the reference's)
    padding: str = "same"  # ISTFT framing: same | center (see the module doc)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mrd_fft_sizes: tuple[int, ...] = (2048, 1024, 512)
    mrd_channels: int = 32
    # Divides every discriminator channel count (1 = the reference's sizes; tiny test models use more).
    discriminator_channel_divisor: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.padding not in ISTFT_PADDINGS:
            raise ValueError(f"padding must be one of {', '.join(ISTFT_PADDINGS)}, got {self.padding!r}")
        if self.n_fft < self.hop_length or self.n_fft % 2:
            raise ValueError(f"n_fft must be even and >= hop_length ({self.hop_length}), got {self.n_fft}")
        if self.padding == "same" and (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"padding 'same' needs n_fft - hop_length even, got {self.n_fft} - {self.hop_length}")
        if min(self.dim, self.intermediate_dim, self.num_layers, self.mrd_channels) < 1:
            raise ValueError("dim, intermediate_dim, num_layers and mrd_channels must be >= 1")
        if not self.mpd_periods or not self.mrd_fft_sizes or self.discriminator_channel_divisor < 1:
            raise ValueError("need at least one mpd period and one mrd fft size, divisor >= 1")
        if any(n < 16 or n % 4 for n in self.mrd_fft_sizes):
            raise ValueError(f"mrd_fft_sizes must be multiples of 4 and >= 16, got {self.mrd_fft_sizes}")
        if self.layer_scale_init < 0:
            raise ValueError(f"layer_scale_init must be >= 0 (0 = 1 / num_layers), got {self.layer_scale_init}")


VOCOS_24KHZ = VocosConfig()


def overlap_add(frames: Tensor, hop: int, identity: Tensor | None = None) -> Tensor:
    """``(B, F, n)`` frames -> ``(B, (F - 1) * hop + n)``: frame ``f`` added at sample ``f * hop``.
    When ``hop`` does not divide ``n``: a transposed convolution with ``identity`` (``(n, 1, n)``)."""
    b, n_frames, n = frames.shape
    if n % hop == 0:  # n / hop shifted copies of the frames' hop-long slices: pads and adds only
        parts = n // hop
        slices = frames.reshape(b, n_frames, parts, hop)
        total = F.pad(slices[:, :, 0], (0, 0, 0, parts - 1))
        for j in range(1, parts):
            total = total + F.pad(slices[:, :, j], (0, 0, j, parts - 1 - j))
        return total.reshape(b, (n_frames + parts - 1) * hop)
    if identity is None:
        identity = torch.eye(n, dtype=frames.dtype, device=frames.device).unsqueeze(1)
    return F.conv_transpose1d(frames.transpose(1, 2), identity, stride=hop).squeeze(1)


class InverseSTFT(nn.Module):
    """Complex frames as ``(B, F, n_fft / 2 + 1)`` real and imaginary parts -> ``(B, samples)``:
    inverse real DFT (``irfft`` norm "backward"), Hann synthesis window, overlap-add, division by
    the overlap-added squared window, and the ``padding``'s trim (see the module doc)."""

    def __init__(self, n_fft: int, hop_length: int, padding: str) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.trim = (n_fft - hop_length) // 2 if padding == "same" else n_fft // 2
        window = torch.hann_window(n_fft, dtype=torch.float64)
        bins = n_fft // 2 + 1
        k = torch.arange(bins, dtype=torch.float64)[:, None]
        t = torch.arange(n_fft, dtype=torch.float64)[None, :]
        angle = 2 * math.pi * k * t / n_fft
        weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
        weight[0] = weight[-1] = 1.0  # DC and Nyquist appear once (their imaginary parts are ignored)
        basis = torch.cat([weight * torch.cos(angle), -weight * torch.sin(angle)]) * window / n_fft
        basis[bins] = 0.0  # sin(0) row: exactly zero, as irfft ignores the DC's imaginary part
        basis[-1] = 0.0  # the Nyquist's
        self.register_buffer("basis", basis.float(), persistent=False)  # (2 * bins, n_fft)
        self.register_buffer("window_sq", window.square().float(), persistent=False)
        # the overlap-add's kernel where hop does not divide n_fft (a constant for the ONNX export)
        identity = torch.eye(n_fft).unsqueeze(1) if n_fft % hop_length else None
        self.register_buffer("identity", identity, persistent=False)

    def forward(self, real: Tensor, imag: Tensor) -> Tensor:
        frames = torch.matmul(torch.cat([real, imag], dim=-1), self.basis)
        signal = overlap_add(frames, self.hop_length, self.identity)
        envelope = overlap_add(self.window_sq.expand(1, frames.shape[1], -1), self.hop_length, self.identity)
        end = signal.shape[-1] - self.trim
        return signal[:, self.trim:end] / envelope[:, self.trim:end]


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: Tensor) -> Tensor:  # (B, dim, F)
        y = self.norm(self.dwconv(x).transpose(1, 2))
        y = self.pwconv2(F.gelu(self.pwconv1(y))) * self.gamma
        return x + y.transpose(1, 2)


class VocosGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids ``(B,)``] -> waveform ``(B, 1, F * hop_length)``
    (``padding: center``: ``(F - 1) * hop_length``); not bounded to [-1, 1] (no tanh, as the reference)."""

    def __init__(self, config: VocosConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.min_frames = 1 if config.padding == "same" else 2
        self.speaker_conditioning = config.generator_conditioning()
        dim = config.dim
        self.embed = nn.Conv1d(config.n_mels + config.label_channels, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        scale = config.layer_scale_init or 1.0 / config.num_layers
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, config.intermediate_dim, scale)
                                    for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        for module in [self.embed, *self.blocks.modules()]:
            if isinstance(module, (nn.Conv1d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self.bins = config.n_fft // 2 + 1
        self.head = nn.Linear(dim, 2 * self.bins)
        self.istft = InverseSTFT(config.n_fft, config.hop_length, config.padding)

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        x = self.embed(concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker"))
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        out = self.head(self.final_norm(x.transpose(1, 2)))  # (B, F, 2 * bins)
        magnitude = torch.clamp(torch.exp(out[..., :self.bins]), max=MAX_MAGNITUDE)
        phase = out[..., self.bins:]
        return self.istft(magnitude * torch.cos(phase), magnitude * torch.sin(phase)).unsqueeze(1)


# ------------------------------------------------------------------------------------------------
# discriminators
# ------------------------------------------------------------------------------------------------
class VocosPeriodDiscriminator(PeriodDiscriminator):
    """HiFi-GAN's period discriminator; Vocos' feature maps leave out the first conv's output."""

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        out = super().forward(wav, labels)
        return DiscriminatorOutput(out.logits, [f[1:] for f in out.features], out.class_logits)


class VocosMultiPeriodDiscriminator(nn.Module):
    def __init__(self, periods: tuple[int, ...], conditioning: DiscriminatorConditioning,
                 channel_divisor: int = 1) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(VocosPeriodDiscriminator(p, conditioning, channel_divisor)
                                            for p in periods)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        return merge_outputs([d(wav, labels) for d in self.discriminators])


class ResolutionDiscriminator(nn.Module):
    """The complex STFT (``n_fft``, hop ``n_fft / 4``, centred, Hann) of the DC-free, peak-normalised
    (0.8) waveform, as (real, imaginary) channels ``(B, 2, frames, bins)``, split into five frequency
    bands; each band through its own five weight-normalised 2-D convs (leaky ReLU 0.1), the bands
    concatenated along frequency, then a 3x3 output conv."""

    def __init__(self, n_fft: int, conditioning: DiscriminatorConditioning, channels: int = 32) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, n_fft // 4
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        bins = n_fft // 2 + 1
        self.bands = [(int(lo * bins), int(hi * bins)) for lo, hi in MRD_BANDS]

        def stack() -> nn.ModuleList:
            layers = [(2, (3, 9), (1, 1), (1, 4))] + [(channels, (3, 9), (1, 2), (1, 4))] * 3 \
                + [(channels, (3, 3), (1, 1), (1, 1))]
            return nn.ModuleList(weight_norm(nn.Conv2d(c_in, channels, k, s, padding=p)) for c_in, k, s, p in layers)

        self.band_convs = nn.ModuleList(stack() for _ in self.bands)
        self.conv_post = weight_norm(nn.Conv2d(channels, 1, (3, 3), (1, 1), padding=(1, 1)))
        self.head = conditioning.head(channels)

    def spectrogram(self, wav: Tensor) -> Tensor:
        x = wav - wav.mean(dim=-1, keepdim=True)
        x = 0.8 * x / (x.abs().amax(dim=-1, keepdim=True) + 1e-9)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.n_fft, self.window, center=True,
                          pad_mode="reflect", return_complex=True)
        return torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        spec = self.spectrogram(wav.reshape(wav.shape[0], wav.shape[-1]))
        features, outputs = [], []
        for (lo, hi), convs in zip(self.bands, self.band_convs):
            x = spec[..., lo:hi]
            for i, conv in enumerate(convs):
                x = F.leaky_relu(conv(x), LRELU_SLOPE)
                if i:
                    features.append(x)
            outputs.append(x)
        x = torch.cat(outputs, dim=-1)
        return head_output(self.head, x, self.conv_post(x), features, labels)


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, fft_sizes: tuple[int, ...], conditioning: DiscriminatorConditioning,
                 channels: int = 32) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(ResolutionDiscriminator(n, conditioning, channels) for n in fft_sizes)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        return merge_outputs([d(wav, labels) for d in self.discriminators])
