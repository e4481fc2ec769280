"""HiFi-GAN (Kong, Kim & Bae, NeurIPS 2020): generator V1/V2/V3, multi-period and multi-scale
discriminators, following the authors' reference implementation (jik876/hifi-gan).

Generator: 7-tap input conv -> for each upsampling rate: leaky ReLU(0.1), transposed conv, then a
multi-receptive-field fusion (MRF) block = the mean of ``len(resblock_kernel_sizes)`` residual
blocks with different kernels / dilations -> leaky ReLU (slope 0.01, as in the reference) ->
7-tap output conv -> tanh. Every conv is weight-normalised.

Generator parameters (80 mels), with weight norm's ``g`` and ``v`` / after
:meth:`HiFiGANGenerator.remove_weight_norm`: V1 13,936,130 / 13,926,017; V2 928,514 / 925,985;
V3 1,464,322 / 1,462,273. The paper's 13.92M / 0.92M / 1.46M are the weight-norm-free counts
truncated to two decimals (equally: the weights without biases, rounded); counting ``g`` too gives
13.94M / 0.93M, so the published figures do not include it.

Initialisation: the reference calls ``normal_(0, 0.01)`` on the weights *after* wrapping them in
weight norm, which has no effect (jik876/hifi-gan#145), so its networks actually train from
PyTorch's default init; we keep that effective behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conditioning_options import SpeakerConditioningOptions
from .discriminator_conditioning import DiscriminatorConditioning, head_output
from .generator_conditioning import concat_label_embedding
from .normalization import remove_weight_norm, spectral_norm, weight_norm
from .outputs import DiscriminatorOutput, merge_outputs

LRELU_SLOPE = 0.1
POST_LRELU_SLOPE = 0.01  # F.leaky_relu's default, used by the reference before conv_post


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


@dataclass(frozen=True)
class HiFiGANConfig(SpeakerConditioningOptions):
    resblock: Literal["1", "2"] = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    n_mels: int = 80
    hop_length: int = 256
    sample_rate: int = 22050
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    msd_scales: int = 3
    # Divides every discriminator channel count (1 = the reference's sizes; tiny test models use more).
    discriminator_channel_divisor: int = 1
    # The two published discriminator layouts: jik876's (the defaults) and the ParallelWaveGAN
    # toolkit's hifigan.v1.yaml, whose scale discriminators stride (4, 4, 4, 4, 1) and whose period
    # discriminators end in a (2, 1) conv (its kernel_sizes[1] - 1), both padded by 1.
    msd_strides: tuple[int, ...] = (2, 2, 4, 4, 1)
    mpd_post_kernel: int = 3
    # Not in any reference: > 0 subtracts a moving average of about 1 / dc_block_hz seconds from the
    # output conv's result before tanh (a fixed, linear-phase DC / sub-``dc_block_hz`` blocker; no
    # weights). A mel loss cannot see DC or drift below the lowest filter, so a generator trained on
    # it alone drifts there; 0 = off (the reference architecture).
    dc_block_hz: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.dc_block_hz < self.sample_rate / 2:
            raise ValueError(f"dc_block_hz must be 0 (off) or in (0, sample_rate / 2), got {self.dc_block_hz}")
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        expected_dilations = 3 if self.resblock == "1" else 2
        if any(len(d) != expected_dilations for d in self.resblock_dilation_sizes):
            raise ValueError(f"resblock {self.resblock} takes {expected_dilations} dilations per block")
        if math.prod(self.upsample_rates) != self.hop_length:
            raise ValueError(
                f"product of upsample_rates {self.upsample_rates} must equal hop_length {self.hop_length}"
            )
        if any((k - u) % 2 for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes)):
            raise ValueError("each upsample kernel size minus its rate must be even (exact length)")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ValueError("upsample_initial_channel must be divisible by 2**len(upsample_rates)")
        if self.msd_scales < 1 or not self.mpd_periods or self.discriminator_channel_divisor < 1:
            raise ValueError("need msd_scales >= 1, at least one mpd period, divisor >= 1")
        if len(self.msd_strides) != 5 or min(self.msd_strides) < 1:
            raise ValueError(f"msd_strides needs 5 strides >= 1 (layers 2-6 of a scale discriminator), "
                             f"got {self.msd_strides}")
        if self.mpd_post_kernel not in (2, 3):
            raise ValueError(f"mpd_post_kernel must be 3 (jik876) or 2 (ParallelWaveGAN toolkit), "
                             f"got {self.mpd_post_kernel}")


HIFIGAN_V1 = HiFiGANConfig()
HIFIGAN_V2 = HiFiGANConfig(upsample_initial_channel=128)
HIFIGAN_V3 = HiFiGANConfig(
    resblock="2",
    upsample_rates=(8, 8, 4),
    upsample_kernel_sizes=(16, 16, 8),
    upsample_initial_channel=256,
    resblock_kernel_sizes=(3, 5, 7),
    resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
)


def _wn_conv(channels: int, kernel_size: int, dilation: int) -> nn.Conv1d:
    return weight_norm(
        nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=same_padding(kernel_size, dilation))
    )


class ResBlock1(nn.Module):
    """Per dilation: x + conv1(lrelu(conv_d(lrelu(x)))) — a dilated conv then a plain conv."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.dilated = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilations)
        self.plain = nn.ModuleList(_wn_conv(channels, kernel_size, 1) for _ in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for dilated, plain in zip(self.dilated, self.plain):
            residual = dilated(F.leaky_relu(x, LRELU_SLOPE))
            x = x + plain(F.leaky_relu(residual, LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation: x + conv_d(lrelu(x)) — the lighter block of V3."""

    def __init__(self, channels: int, kernel_size: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_wn_conv(channels, kernel_size, d) for d in dilations)

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, LRELU_SLOPE))
        return x


class MultiReceptiveFieldFusion(nn.Module):
    """Mean of parallel residual blocks with different kernel sizes and dilations."""

    def __init__(self, channels: int, config: HiFiGANConfig) -> None:
        super().__init__()
        block = ResBlock1 if config.resblock == "1" else ResBlock2
        self.blocks = nn.ModuleList(
            block(channels, k, d) for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )

    def forward(self, x: Tensor) -> Tensor:
        total = self.blocks[0](x)
        for block in self.blocks[1:]:
            total = total + block(x)
        return total / len(self.blocks)


class DCBlock(nn.Module):
    """``x`` minus its centred moving average over ``round(sample_rate / cutoff_hz)`` samples (odd):
    zero gain at DC, first full-gain frequency ``cutoff_hz`` (the boxcar's first null), linear phase,
    edges padded by repetition so any length works. A running sum (in float32; O(length), where a
    1103-tap pooling cost ~30% of a small generator's step): no weights, exports to ONNX."""

    def __init__(self, sample_rate: int, cutoff_hz: float) -> None:
        super().__init__()
        self.width = max(3, round(sample_rate / cutoff_hz) | 1)

    def forward(self, x: Tensor) -> Tensor:
        half = self.width // 2
        padded = F.pad(x.float(), (half + 1, half), mode="replicate")  # one more: the sum before the first
        total = torch.cumsum(padded, dim=-1)
        mean = (total[..., self.width:] - total[..., : -self.width]) / self.width
        return x - mean.to(x.dtype)


class HiFiGANGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids ``(B,)``] -> waveform ``(B, 1, F * hop_length)`` in [-1, 1]."""

    def __init__(self, config: HiFiGANConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.min_frames = 1
        self.speaker_conditioning = config.generator_conditioning()
        channels = config.upsample_initial_channel
        self.conv_pre = weight_norm(nn.Conv1d(config.n_mels + config.label_channels, channels, 7, padding=3))
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes):
            self.ups.append(
                weight_norm(nn.ConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2))
            )
            channels //= 2
            self.mrfs.append(MultiReceptiveFieldFusion(channels, config))
        self.conv_post = weight_norm(nn.Conv1d(channels, 1, 7, padding=3))
        self.dc_block = DCBlock(config.sample_rate, config.dc_block_hz) if config.dc_block_hz else nn.Identity()

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        x = self.conv_pre(concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker"))
        for up, mrf in zip(self.ups, self.mrfs):
            x = mrf(up(F.leaky_relu(x, LRELU_SLOPE)))
        return torch.tanh(self.dc_block(self.conv_post(F.leaky_relu(x, POST_LRELU_SLOPE))))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


# ------------------------------------------------------------------------------------------------
# discriminators
# ------------------------------------------------------------------------------------------------
def _scaled(channels: int, divisor: int) -> int:
    return max(1, channels // divisor)


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into ``(T / p, p)`` and applies 2-D convs with kernels ``(k, 1)``."""

    CHANNELS = (32, 128, 512, 1024, 1024)

    def __init__(
        self,
        period: int,
        conditioning: DiscriminatorConditioning,
        channel_divisor: int = 1,
        kernel_size: int = 5,
        stride: int = 3,
        post_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.period = period
        channels = [1] + [_scaled(c, channel_divisor) for c in self.CHANNELS]
        strides = [stride] * (len(self.CHANNELS) - 1) + [1]
        self.convs = nn.ModuleList(
            weight_norm(
                nn.Conv2d(c_in, c_out, (kernel_size, 1), (s, 1), padding=(same_padding(kernel_size), 0))
            )
            for c_in, c_out, s in zip(channels[:-1], channels[1:], strides)
        )
        self.conv_post = weight_norm(nn.Conv2d(channels[-1], 1, (post_kernel, 1), 1, padding=(1, 0)))
        self.head = conditioning.head(channels[-1])

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        batch, chans, length = wav.shape
        if length % self.period:
            wav = F.pad(wav, (0, self.period - length % self.period), mode="reflect")
        x = wav.view(batch, chans, -1, self.period)
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        return head_output(self.head, x, self.conv_post(x), features, labels)


class MultiPeriodDiscriminator(nn.Module):
    def __init__(
        self,
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        conditioning: DiscriminatorConditioning = DiscriminatorConditioning(),
        channel_divisor: int = 1,
        post_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, conditioning, channel_divisor, post_kernel=post_kernel) for p in periods
        )

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        return merge_outputs([d(wav, labels) for d in self.discriminators])


class ScaleDiscriminator(nn.Module):
    """Strided, grouped 1-D convs on raw (or average-pooled) audio."""

    # (out_channels, kernel, stride, groups); in_channels is the previous out (1 for the first);
    # the strides of layers 2-6 can be replaced (``strides``: the toolkit's recipe uses 4, 4, 4, 4, 1)
    LAYERS = (
        (128, 15, 1, 1),
        (128, 41, 2, 4),
        (256, 41, 2, 16),
        (512, 41, 4, 16),
        (1024, 41, 4, 16),
        (1024, 41, 1, 16),
        (1024, 5, 1, 1),
    )

    def __init__(
        self,
        use_spectral_norm: bool,
        conditioning: DiscriminatorConditioning,
        channel_divisor: int = 1,
        strides: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        layers = list(self.LAYERS)
        if strides is not None:
            layers[1:-1] = [(out, k, s, g) for (out, k, _, g), s in zip(layers[1:-1], strides, strict=True)]
        c_in = 1
        convs = []
        for out, kernel, stride, groups in layers:
            c_out = _scaled(out, channel_divisor)
            groups = math.gcd(groups, c_in, c_out)  # the reference's groups unless channels are scaled down
            convs.append(norm(nn.Conv1d(c_in, c_out, kernel, stride, groups=groups, padding=(kernel - 1) // 2)))
            c_in = c_out
        self.convs = nn.ModuleList(convs)
        self.conv_post = norm(nn.Conv1d(c_in, 1, 3, 1, padding=1))
        self.head = conditioning.head(c_in)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        x = wav
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            features.append(x)
        return head_output(self.head, x, self.conv_post(x), features, labels)


class MultiScaleDiscriminator(nn.Module):
    """Scale discriminators on audio average-pooled 1x, 2x, 4x...; spectral norm on the first."""

    def __init__(
        self,
        scales: int = 3,
        conditioning: DiscriminatorConditioning = DiscriminatorConditioning(),
        channel_divisor: int = 1,
        strides: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(i == 0, conditioning, channel_divisor, strides) for i in range(scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        parts = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                wav = self.pool(wav)
            parts.append(discriminator(wav, labels))
        return merge_outputs(parts)
