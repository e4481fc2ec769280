"""BigVGAN (Lee et al., ICLR 2023) and BigVGAN-v2 (NVIDIA 2024): HiFi-GAN's upsampling generator
with anti-aliased multi-periodicity (AMP) residual blocks, following NVIDIA/BigVGAN (``bigvgan==2.4.1``,
its torch activation path, not the optional CUDA kernel).

Generator: 7-tap input conv -> per upsampling rate: transposed conv (no activation before it),
then the mean of ``len(resblock_kernel_sizes)`` AMP blocks -> anti-aliased Snake/SnakeBeta ->
7-tap output conv (bias optional) -> tanh, or a clamp to [-1, 1] (v2). AMP block "1": per dilation,
``x + conv1(act(conv_d(act(x))))``; block "2": ``x + conv_d(act(x))``; every ``act`` an
:class:`~.alias_free.AntiAliasedActivation` with its own ``alpha`` (and ``beta``). Weight norm on
every conv.

Discriminators: HiFi-GAN's multi-period discriminator (``mpd``; BigVGAN's is jik876's, periods
2, 3, 5, 7, 11) plus, for v2, the multi-scale sub-band CQT discriminator (``cqtd``: per scale the
input resampled to twice its rate (torchaudio), a constant-Q transform (nnAudio's ``CQT2010v2``:
real and imaginary parts as two channels), one conv per octave, then a stack of dilated 2-D convs)
or, for v1, UnivNet's multi-resolution discriminator (``mrd``: 2-D convs on STFT magnitudes).

Parameters (80 mels, with weight norm's g and v, as the reference counts them): ``bigvgan_v2``
(bigvgan_v2_22khz_80band_256x: 1536 channels, rates 4,4,2,2,2,2) generator 112,231,249, MPD
41,105,770, CQT discriminator 4,454,304; ``bigvgan_base`` (bigvgan_base_22khz_80band: 512 channels,
rates 8,8,2,2) generator 13,953,474, MRD 280,902 (the full v1, bigvgan_22khz_80band, is
``bigvgan_base`` with v2's upsampling overrides). Equal counts are checked against the reference in
tests/reference/test_reference_bigvgan.py.

Feature matching: the reference's CQT discriminator does not return its output map among its
features (its MPD and MRD do), so :class:`CQTDiscriminator` marks its outputs unmatched
(``DiscriminatorOutput.final_matched``) and ``fm_include_final`` skips them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .alias_free import ACTIVATIONS, AntiAliasedActivation
from .conditioning_options import SpeakerConditioningOptions
from .discriminator_conditioning import DiscriminatorConditioning, head_output
from .generator_conditioning import concat_label_embedding
from .hifigan import MultiPeriodDiscriminator, same_padding
from .normalization import remove_weight_norm, weight_norm
from .outputs import DiscriminatorOutput, merge_outputs

LRELU_SLOPE = 0.1


@dataclass(frozen=True)
class BigVGANConfig(SpeakerConditioningOptions):
    resblock: Literal["1", "2"] = "1"
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: Literal["snake", "snakebeta"] = "snakebeta"
    snake_logscale: bool = True
    use_tanh_at_final: bool = False
    use_bias_at_final: bool = False
    n_mels: int = 80
    hop_length: int = 256
    sample_rate: int = 22050
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    # divides every MPD / MRD channel count (1 = the reference's; tiny test models use more)
    discriminator_channel_divisor: int = 1
    # the second discriminator: cqtd (v2: use_cqtd_instead_of_mrd) or mrd (v1)
    discriminator: Literal["cqtd", "mrd"] = "cqtd"
    cqtd_filters: int = 128
    cqtd_max_filters: int = 1024
    cqtd_filters_scale: int = 1
    cqtd_dilations: tuple[int, ...] = (1, 2, 4)
    cqtd_hop_lengths: tuple[int, ...] = (512, 256, 256)
    cqtd_n_octaves: tuple[int, ...] = (9, 9, 9)
    cqtd_bins_per_octaves: tuple[int, ...] = (24, 36, 48)
    cqtd_normalize_volume: bool = False
    # (n_fft, hop, window) per MRD resolution (v1)
    mrd_resolutions: tuple[tuple[int, int, int], ...] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.discriminator not in ("cqtd", "mrd"):
            raise ValueError(f"discriminator must be 'cqtd' or 'mrd', got {self.discriminator!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        if math.prod(self.upsample_rates) != self.hop_length:
            raise ValueError(f"product of upsample_rates {self.upsample_rates} must equal hop_length {self.hop_length}")
        if any((k - u) % 2 for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes)):
            raise ValueError("each upsample kernel size minus its rate must be even (exact length)")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ValueError("upsample_initial_channel must be divisible by 2**len(upsample_rates)")
        if not self.mpd_periods or self.discriminator_channel_divisor < 1:
            raise ValueError("need at least one mpd period and discriminator_channel_divisor >= 1")
        scales = (self.cqtd_hop_lengths, self.cqtd_n_octaves, self.cqtd_bins_per_octaves)
        if len({len(s) for s in scales}) != 1 or not self.cqtd_hop_lengths:
            raise ValueError("cqtd_hop_lengths, cqtd_n_octaves and cqtd_bins_per_octaves need one entry per scale")
        if self.cqtd_filters_scale != 1:
            raise ValueError("cqtd_filters_scale must be 1 (the reference's layer widths assume it)")
        if any(len(r) != 3 for r in self.mrd_resolutions):
            raise ValueError("each mrd resolution is [n_fft, hop, window]")


BIGVGAN_V2 = BigVGANConfig()  # bigvgan_v2_22khz_80band_256x.json (and _fmax8k_: the same network)
# bigvgan_22khz_80band.json / bigvgan_base_22khz_80band.json: v1, tanh + bias at the output, UnivNet's MRD
BIGVGAN_V1 = BigVGANConfig(upsample_rates=(4, 4, 2, 2, 2, 2), upsample_kernel_sizes=(8, 8, 4, 4, 4, 4),
                           upsample_initial_channel=1536, use_tanh_at_final=True, use_bias_at_final=True,
                           discriminator="mrd")
BIGVGAN_BASE = BigVGANConfig(upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
                             upsample_initial_channel=512, use_tanh_at_final=True, use_bias_at_final=True,
                             discriminator="mrd")


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=dilation,
                                 padding=same_padding(kernel_size, dilation)))


def _activation(config: BigVGANConfig, channels: int) -> AntiAliasedActivation:
    return AntiAliasedActivation(ACTIVATIONS[config.activation](channels, config.snake_logscale))


class AMPBlock1(nn.Module):
    """Per dilation: ``x + conv_1(act(conv_d(act(x))))``, each ``act`` anti-aliased with its own parameters."""

    def __init__(self, config: BigVGANConfig, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilations)
        self.convs2 = nn.ModuleList(_wn_conv(channels, kernel_size, 1) for _ in dilations)
        self.activations = nn.ModuleList(_activation(config, channels) for _ in range(2 * len(dilations)))

    def forward(self, x: Tensor) -> Tensor:
        for i, (dilated, plain) in enumerate(zip(self.convs1, self.convs2)):
            x = x + plain(self.activations[2 * i + 1](dilated(self.activations[2 * i](x))))
        return x


class AMPBlock2(nn.Module):
    """Per dilation: ``x + conv_d(act(x))``."""

    def __init__(self, config: BigVGANConfig, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilations)
        self.activations = nn.ModuleList(_activation(config, channels) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for conv, act in zip(self.convs, self.activations):
            x = x + conv(act(x))
        return x


class AMPFusion(nn.Module):
    """The mean of parallel AMP blocks with different kernel sizes and dilations."""

    def __init__(self, config: BigVGANConfig, channels: int) -> None:
        super().__init__()
        block = AMPBlock1 if config.resblock == "1" else AMPBlock2
        self.blocks = nn.ModuleList(block(config, channels, k, d)
                                    for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes))

    def forward(self, x: Tensor) -> Tensor:
        total = self.blocks[0](x)
        for block in self.blocks[1:]:
            total = total + block(x)
        return total / len(self.blocks)


class BigVGANGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids ``(B,)``] -> waveform ``(B, 1, F * hop_length)`` in [-1, 1]."""

    def __init__(self, config: BigVGANConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.min_frames = 1
        self.speaker_conditioning = config.generator_conditioning()
        channels = config.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(config.n_mels + config.label_channels, channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.amps = nn.ModuleList()
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes):
            self.ups.append(
                weight_norm(nn.ConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2)))
            channels //= 2
            self.amps.append(AMPFusion(config, channels))
        self.activation_post = _activation(config, channels)
        self.conv_post = weight_norm(nn.Conv1d(channels, 1, 7, padding=3, bias=config.use_bias_at_final))

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        x = self.conv_pre(concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker"))
        for up, amp in zip(self.ups, self.amps):
            x = amp(up(x))
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else torch.clamp(x, -1.0, 1.0)

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


# ------------------------------------------------------------------------------------------------
# discriminators
# ------------------------------------------------------------------------------------------------
def _padding_2d(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return (kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2


class CQTDiscriminator(nn.Module):
    """One scale of BigVGAN-v2's sub-band CQT discriminator.

    The waveform is resampled to ``2 * sample_rate`` (torchaudio's windowed-sinc ``Resample``) and
    transformed by nnAudio's ``CQT2010v2`` (``n_octaves * bins_per_octave`` bins from C1, hop
    ``hop_length`` at the doubled rate, zero padded); the real and imaginary parts are two channels,
    each octave's bins get their own 2-D conv, the octaves are concatenated again and go through
    a plain conv, ``len(dilations)`` weight-normalised convs strided (1, 2) along the bins and dilated
    along time, a 3x3 conv and a 3x3 output conv (leaky ReLU 0.1 after all but the last).
    """

    KERNEL = (3, 9)

    def __init__(self, config: BigVGANConfig, hop_length: int, n_octaves: int, bins_per_octave: int,
                 conditioning: DiscriminatorConditioning) -> None:
        super().__init__()
        from nnAudio.features.cqt import CQT2010v2
        from torchaudio.transforms import Resample

        self.n_octaves, self.bins_per_octave = n_octaves, bins_per_octave
        self.normalize_volume = config.cqtd_normalize_volume
        with torch.device("cpu"):  # fixed filters computed from data (also under a meta-device build: validate)
            self.resample = Resample(orig_freq=config.sample_rate, new_freq=2 * config.sample_rate)
            self.cqt_transform = CQT2010v2(sr=2 * config.sample_rate, hop_length=hop_length,
                                           n_bins=n_octaves * bins_per_octave, bins_per_octave=bins_per_octave,
                                           output_format="Complex", pad_mode="constant", verbose=False)
        k = self.KERNEL
        self.conv_pres = nn.ModuleList(nn.Conv2d(2, 2, k, padding=_padding_2d(k)) for _ in range(n_octaves))
        filters, top = config.cqtd_filters, config.cqtd_max_filters
        convs: list[nn.Module] = [nn.Conv2d(2, filters, k, padding=_padding_2d(k))]
        c_in = filters
        for i, d in enumerate(config.cqtd_dilations):
            c_out = min(config.cqtd_filters_scale ** (i + 1) * filters, top)
            convs.append(weight_norm(nn.Conv2d(c_in, c_out, k, stride=(1, 2), dilation=(d, 1),
                                               padding=_padding_2d(k, (d, 1)))))
            c_in = c_out
        c_out = min(config.cqtd_filters_scale ** (len(config.cqtd_dilations) + 1) * filters, top)
        convs.append(weight_norm(nn.Conv2d(c_in, c_out, (3, 3), padding=(1, 1))))
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(nn.Conv2d(c_out, 1, (3, 3), padding=(1, 1)))
        self.head = conditioning.head(c_out)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        if self.normalize_volume:
            wav = wav - wav.mean(dim=-1, keepdim=True)
            wav = 0.8 * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-9)
        z = self.cqt_transform(self.resample(wav))  # (B, bins, frames, 2): real, imaginary
        z = z.permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        n = self.bins_per_octave
        x = torch.cat([conv(z[..., i * n:(i + 1) * n]) for i, conv in enumerate(self.conv_pres)], dim=-1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        out = head_output(self.head, x, self.conv_post(x), features, labels)
        return out._replace(final_matched=[False])


class MultiScaleSubbandCQTDiscriminator(nn.Module):
    def __init__(self, config: BigVGANConfig, conditioning: DiscriminatorConditioning) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            CQTDiscriminator(config, hop, octaves, bins, conditioning)
            for hop, octaves, bins in zip(config.cqtd_hop_lengths, config.cqtd_n_octaves,
                                          config.cqtd_bins_per_octaves))

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        return merge_outputs([d(wav, labels) for d in self.discriminators])


class ResolutionDiscriminator(nn.Module):
    """UnivNet's MRD part (BigVGAN v1): 2-D convs (kernels 3x9, strides 1x2) on an STFT magnitude
    (``n_fft``, ``hop``, ``window``; reflect padding of ``(n_fft - hop) / 2``, not centred)."""

    def __init__(self, resolution: tuple[int, int, int], conditioning: DiscriminatorConditioning,
                 channel_divisor: int = 1) -> None:
        super().__init__()
        self.n_fft, self.hop, self.window = resolution
        c = max(1, 32 // channel_divisor)
        layers = [(1, (3, 9), 1), (c, (3, 9), 2), (c, (3, 9), 2), (c, (3, 9), 2), (c, (3, 3), 1)]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(c_in, c, k, stride=(1, s), padding=_padding_2d(k))) for c_in, k, s in layers)
        self.conv_post = weight_norm(nn.Conv2d(c, 1, (3, 3), padding=(1, 1)))
        self.head = conditioning.head(c)
        self.register_buffer("stft_window", torch.ones(self.window), persistent=False)  # rectangular (reference)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        pad = (self.n_fft - self.hop) // 2
        x = F.pad(wav, (pad, pad), mode="reflect").squeeze(1)
        x = torch.stft(x, self.n_fft, self.hop, self.window, self.stft_window, center=False,
                       return_complex=True).abs().unsqueeze(1)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        return head_output(self.head, x, self.conv_post(x), features, labels)


class MultiResolutionDiscriminator(nn.Module):
    def __init__(self, config: BigVGANConfig, conditioning: DiscriminatorConditioning) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(r, conditioning, config.discriminator_channel_divisor)
            for r in config.mrd_resolutions)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        return merge_outputs([d(wav, labels) for d in self.discriminators])


def build_discriminators(config: BigVGANConfig) -> dict[str, nn.Module]:
    """``mpd`` + ``cqtd`` (v2) or ``mrd`` (v1), the names of the reference's checkpoint entries."""
    conditioning = config.discriminator_conditioning()
    mpd = MultiPeriodDiscriminator(config.mpd_periods, conditioning, config.discriminator_channel_divisor)
    if config.discriminator == "cqtd":
        return {"mpd": mpd, "cqtd": MultiScaleSubbandCQTDiscriminator(config, conditioning)}
    return {"mpd": mpd, "mrd": MultiResolutionDiscriminator(config, conditioning)}
