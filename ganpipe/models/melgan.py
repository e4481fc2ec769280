"""MelGAN (Kumar et al., NeurIPS 2019), following descriptinc/melgan-neurips.

Generator: reflect-pad + 7-tap conv to ``channels`` -> per upsampling ratio ``r``: leaky ReLU(0.2),
transposed conv (kernel ``2r``, stride ``r``) halving the channels, then ``stacks`` residual
stacks with dilations 1, 3, 9, ... -> leaky ReLU, reflect-pad + 7-tap conv -> tanh. Weight norm
on every conv. The published LJSpeech model (80 mels, ratios 8-8-2-2, ``ngf`` 32 so 512 initial
channels, 3 stacks) has 4,266,050 parameters counting weight norm's ``g`` and ``v``, 4,260,257 with the norms
folded away (paper: 4.26M).
The same network with ``out_channels=4`` is the multi-band MelGAN generator
(:mod:`.multiband_melgan`).

Discriminator: three identical window-based (patch) discriminators on audio average-pooled by
1x, 2x, 4x; each a 15-tap conv, strided grouped convs (kernel ``10s+1``, groups ``in/4``), a
5-tap conv and a 3-tap output conv, leaky ReLU(0.2), weight norm.

Initialisation: like HiFi-GAN's reference, the ``normal_(0, 0.02)`` init is applied after weight norm
and so has no effect; PyTorch's default init is what the reference effectively trains from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from .conditioning_options import SpeakerConditioningOptions
from .discriminator_conditioning import DiscriminatorConditioning, head_output
from .generator_conditioning import concat_label_embedding
from .normalization import remove_weight_norm, weight_norm
from .outputs import DiscriminatorOutput, merge_outputs

LRELU_SLOPE = 0.2


@dataclass(frozen=True)
class MelGANConfig(SpeakerConditioningOptions):
    ngf: int = 32
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    residual_stacks: int = 3
    n_mels: int = 80
    hop_length: int = 256
    sample_rate: int = 22050
    discriminator_scales: int = 3
    discriminator_channels: int = 16
    discriminator_max_channels: int = 1024
    discriminator_downsample_scales: tuple[int, ...] = (4, 4, 4, 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        if math.prod(self.upsample_rates) != self.hop_length:
            raise ValueError(
                f"product of upsample_rates {self.upsample_rates} must equal hop_length {self.hop_length}"
            )
        if self.ngf < 1 or self.residual_stacks < 1 or self.discriminator_scales < 1:
            raise ValueError("ngf, residual_stacks and discriminator_scales must be >= 1")

    @property
    def channels(self) -> int:
        return self.ngf * 2 ** len(self.upsample_rates)


class ResidualStack(nn.Module):
    """``x -> conv1x1(x) + conv1x1(lrelu(conv3_d(reflect_pad(lrelu(x)))))``."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.LeakyReLU(LRELU_SLOPE),
            nn.ReflectionPad1d((kernel_size - 1) // 2 * dilation),
            weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=dilation)),
            nn.LeakyReLU(LRELU_SLOPE),
            weight_norm(nn.Conv1d(channels, channels, 1)),
        )
        self.shortcut = weight_norm(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.block(x)


class MelGANStack(nn.Module):
    """The MelGAN network body: ``(B, in_channels, F) -> (B, out_channels, F * prod(rates))``, tanh."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: int,
        upsample_rates: tuple[int, ...],
        residual_stacks: int,
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        if channels % 2 ** len(upsample_rates):
            raise ValueError(f"channels {channels} must be divisible by 2**{len(upsample_rates)}")
        padding = (kernel_size - 1) // 2
        self.min_frames = self.shortest_input(padding, upsample_rates, 3 ** (residual_stacks - 1))
        layers: list[nn.Module] = [
            nn.ReflectionPad1d(padding),
            weight_norm(nn.Conv1d(in_channels, channels, kernel_size)),
        ]
        for rate in upsample_rates:
            layers += [
                nn.LeakyReLU(LRELU_SLOPE),
                weight_norm(
                    nn.ConvTranspose1d(
                        channels, channels // 2, 2 * rate, stride=rate,
                        padding=rate // 2 + rate % 2, output_padding=rate % 2,
                    )
                ),
            ]
            channels //= 2
            layers += [ResidualStack(channels, dilation=3**j) for j in range(residual_stacks)]
        layers += [
            nn.LeakyReLU(LRELU_SLOPE),
            nn.ReflectionPad1d(padding),
            weight_norm(nn.Conv1d(channels, out_channels, kernel_size)),
            nn.Tanh(),
        ]
        self.layers = nn.Sequential(*layers)

    @staticmethod
    def shortest_input(padding: int, upsample_rates: tuple[int, ...], max_dilation: int) -> int:
        """Fewest input frames for which every reflection pad is shorter than its input."""
        frames = padding + 1
        upsampling = 1
        for rate in upsample_rates:
            upsampling *= rate
            frames = max(frames, -(-(max_dilation + 1) // upsampling))
        return frames

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] < self.min_frames:
            raise ValueError(f"need at least {self.min_frames} input frames, got {x.shape[-1]}")
        return self.layers(x)


class MelGANGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids ``(B,)``] -> waveform ``(B, 1, F * hop_length)`` in [-1, 1]."""

    def __init__(self, config: MelGANConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.speaker_conditioning = config.generator_conditioning()
        self.stack = MelGANStack(
            config.n_mels + config.label_channels, 1, config.channels, config.upsample_rates, config.residual_stacks
        )
        self.min_frames = self.stack.min_frames  # reflection padding: 4 frames for the reference

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        return self.stack(concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker"))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


class MelGANScaleDiscriminator(nn.Module):
    """One window-based discriminator (descript's ``NLayerDiscriminator``)."""

    def __init__(
        self,
        conditioning: DiscriminatorConditioning,
        channels: int = 16,
        max_channels: int = 1024,
        downsample_scales: tuple[int, ...] = (4, 4, 4, 4),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.ReflectionPad1d(7),
                weight_norm(nn.Conv1d(1, channels, 15)),
                nn.LeakyReLU(LRELU_SLOPE),
            )
        ]
        c_in = channels
        for scale in downsample_scales:
            c_out = min(c_in * scale, max_channels)
            groups = math.gcd(max(1, c_in // 4), c_in, c_out)
            layers.append(
                nn.Sequential(
                    weight_norm(nn.Conv1d(c_in, c_out, 10 * scale + 1, scale, padding=5 * scale, groups=groups)),
                    nn.LeakyReLU(LRELU_SLOPE),
                )
            )
            c_in = c_out
        c_out = min(c_in * 2, max_channels)
        layers.append(
            nn.Sequential(weight_norm(nn.Conv1d(c_in, c_out, 5, padding=2)), nn.LeakyReLU(LRELU_SLOPE))
        )
        self.layers = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv1d(c_out, 1, 3, padding=1))
        self.head = conditioning.head(c_out)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        x = wav
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return head_output(self.head, x, self.conv_post(x), features, labels)


class MelGANMultiScaleDiscriminator(nn.Module):
    def __init__(
        self,
        scales: int = 3,
        conditioning: DiscriminatorConditioning = DiscriminatorConditioning(),
        channels: int = 16,
        max_channels: int = 1024,
        downsample_scales: tuple[int, ...] = (4, 4, 4, 4),
    ) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            MelGANScaleDiscriminator(conditioning, channels, max_channels, downsample_scales)
            for _ in range(scales)
        )
        self.pool = nn.AvgPool1d(4, stride=2, padding=1, count_include_pad=False)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        parts = []
        for index, discriminator in enumerate(self.discriminators):
            if index:
                wav = self.pool(wav)
            parts.append(discriminator(wav, labels))
        return merge_outputs(parts)

