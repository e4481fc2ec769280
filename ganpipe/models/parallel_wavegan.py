"""Parallel WaveGAN (Yamamoto, Song & Kim, ICASSP 2020), following kan-bayashi/ParallelWaveGAN.

Generator: a non-causal WaveNet that turns Gaussian noise ``(B, 1, T)`` into a waveform, conditioned
at every layer on the mel spectrogram upsampled to sample rate. 30 layers in 3 stacks (dilations
1..512 per stack), kernel 3, 64 residual / 128 gate / 64 skip channels, gated tanh-sigmoid units,
``sqrt(0.5)``-scaled residuals and ``sqrt(1 / layers)``-scaled skip sum, then
ReLU-1x1-ReLU-1x1 to one channel (no output squashing). As in the reference, the last block's
residual output is computed but unused, so its ``conv_out`` never receives a gradient. Conditioning network
("ConvInUpsampleNetwork"): a 5-frame (``2 * aux_context_window + 1``) conv over the mels, then per
upsample scale ``s`` (4, 4, 4, 4): nearest-neighbour stretch by ``s`` in time and a ``1 x (2s + 1)``
2-D conv. Weight norm on every conv (``Conv1d`` and ``Conv2d``).

Generator parameters (80 mels): 1,346,042 with weight norm's ``g`` and ``v``, 1,334,309 without.
The paper quotes 1.44M, which this reference architecture does not reach (-6.5%); the gap is about
the size of the discriminator (99,842), so the paper's figure probably counted both networks.

Input framing: the reference trains on mels that the data loader has already padded by
``aux_context_window`` frames on each side (its context conv has no padding) and replicate-pads at
inference. Here the generator replicate-pads internally, so ``(B, 80, F)`` maps to exactly
``(B, 1, F * 256)`` in training and inference alike.

Discriminator: 10 non-causal 1-D convs (kernel 3, 64 channels, dilations 1, 1, 2, ..., 8 and a
final undilated conv to one channel), leaky ReLU(0.2), weight norm; a logit per sample.
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
from .normalization import remove_weight_norm, weight_norm
from .outputs import DiscriminatorOutput


@dataclass(frozen=True)
class ParallelWaveGANConfig(SpeakerConditioningOptions):
    layers: int = 30
    stacks: int = 3
    kernel_size: int = 3
    residual_channels: int = 64
    gate_channels: int = 128
    skip_channels: int = 64
    aux_context_window: int = 2
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)
    n_mels: int = 80
    hop_length: int = 256
    sample_rate: int = 22050
    discriminator_layers: int = 10
    discriminator_channels: int = 64
    discriminator_kernel_size: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers % self.stacks:
            raise ValueError(f"layers ({self.layers}) must be divisible by stacks ({self.stacks})")
        if self.gate_channels % 2:
            raise ValueError("gate_channels must be even (split into tanh and sigmoid halves)")
        if self.kernel_size % 2 == 0 or self.discriminator_kernel_size % 2 == 0:
            raise ValueError("kernel sizes must be odd (non-causal 'same' convolutions)")
        if math.prod(self.upsample_scales) != self.hop_length:
            raise ValueError(
                f"product of upsample_scales {self.upsample_scales} must equal hop_length {self.hop_length}"
            )
        if self.discriminator_layers < 2:
            raise ValueError("discriminator_layers must be >= 2")


def _kaiming_conv1d(in_channels: int, out_channels: int, kernel_size: int, **kwargs: object) -> nn.Conv1d:
    """Conv1d initialised as in the reference: He-normal weights, zero bias."""
    conv = nn.Conv1d(in_channels, out_channels, kernel_size, **kwargs)  # type: ignore[arg-type]
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


class ConvInUpsampleNetwork(nn.Module):
    """mels ``(B, C, F + 2 * context)`` -> ``(B, C, F * prod(scales))``."""

    def __init__(self, channels: int, upsample_scales: tuple[int, ...], aux_context_window: int) -> None:
        super().__init__()
        self.conv_in = weight_norm(_kaiming_conv1d(channels, channels, 2 * aux_context_window + 1, bias=False))
        self.scales = tuple(upsample_scales)
        convs = []
        for scale in upsample_scales:
            conv = nn.Conv2d(1, 1, (1, 2 * scale + 1), padding=(0, scale), bias=False)
            nn.init.constant_(conv.weight, 1.0 / (2 * scale + 1))  # starts as a moving average
            convs.append(weight_norm(conv))
        self.convs = nn.ModuleList(convs)

    def forward(self, mel: Tensor) -> Tensor:
        x = self.conv_in(mel).unsqueeze(1)  # (B, 1, C, F)
        for scale, conv in zip(self.scales, self.convs):
            x = conv(F.interpolate(x, scale_factor=(1, scale), mode="nearest"))
        return x.squeeze(1)


class GatedResidualBlock(nn.Module):
    """Dilated conv + local conditioning -> tanh * sigmoid -> (residual out, skip out)."""

    def __init__(self, config: ParallelWaveGANConfig, aux_channels: int, dilation: int) -> None:
        super().__init__()
        c = config
        self.conv = weight_norm(
            _kaiming_conv1d(
                c.residual_channels, c.gate_channels, c.kernel_size,
                dilation=dilation, padding=(c.kernel_size - 1) // 2 * dilation,
            )
        )
        self.conv_aux = weight_norm(_kaiming_conv1d(aux_channels, c.gate_channels, 1, bias=False))
        half = c.gate_channels // 2
        self.conv_out = weight_norm(_kaiming_conv1d(half, c.residual_channels, 1))
        self.conv_skip = weight_norm(_kaiming_conv1d(half, c.skip_channels, 1))

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Tensor]:
        gate = self.conv(x) + self.conv_aux(aux)
        filt, sig = gate.chunk(2, dim=1)
        hidden = torch.tanh(filt) * torch.sigmoid(sig)
        return (self.conv_out(hidden) + x) * math.sqrt(0.5), self.conv_skip(hidden)


class ParallelWaveGANGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids] [+ noise ``(B, 1, F * hop)``] -> waveform ``(B, 1, F * hop)``.

    Noise is drawn from N(0, 1) when not given (pass it for reproducible output).
    """

    def __init__(self, config: ParallelWaveGANConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.min_frames = 1
        self.aux_context_window = config.aux_context_window
        self.speaker_conditioning = config.generator_conditioning()
        aux_channels = config.n_mels + config.label_channels
        self.upsample = ConvInUpsampleNetwork(aux_channels, config.upsample_scales, config.aux_context_window)
        self.first_conv = weight_norm(_kaiming_conv1d(1, config.residual_channels, 1))
        per_stack = config.layers // config.stacks
        self.blocks = nn.ModuleList(
            GatedResidualBlock(config, aux_channels, 2 ** (layer % per_stack)) for layer in range(config.layers)
        )
        self.output = nn.Sequential(
            nn.ReLU(),
            weight_norm(_kaiming_conv1d(config.skip_channels, config.skip_channels, 1)),
            nn.ReLU(),
            weight_norm(_kaiming_conv1d(config.skip_channels, 1, 1)),
        )

    def forward(self, mel: Tensor, speaker: Tensor | None = None, noise: Tensor | None = None) -> Tensor:
        mel = concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker")
        length = mel.shape[-1] * self.hop_length
        if noise is None:
            noise = torch.randn(mel.shape[0], 1, length, device=mel.device, dtype=mel.dtype)
        elif noise.shape != (mel.shape[0], 1, length):
            raise ValueError(f"noise must have shape {(mel.shape[0], 1, length)}, got {tuple(noise.shape)}")
        if self.aux_context_window:
            mel = F.pad(mel, (self.aux_context_window, self.aux_context_window), mode="replicate")
        aux = self.upsample(mel)
        x = self.first_conv(noise)
        skips = x.new_zeros(x.shape[0], self.config.skip_channels, x.shape[-1])
        for block in self.blocks:
            x, skip = block(x, aux)
            skips = skips + skip
        return self.output(skips * math.sqrt(1.0 / len(self.blocks)))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)


class ParallelWaveGANDiscriminator(nn.Module):
    def __init__(
        self,
        conditioning: DiscriminatorConditioning = DiscriminatorConditioning(),
        layers: int = 10,
        channels: int = 64,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        convs = []
        for index in range(layers - 1):
            dilation = max(1, index)
            convs.append(
                weight_norm(
                    _kaiming_conv1d(
                        1 if index == 0 else channels, channels, kernel_size,
                        dilation=dilation, padding=(kernel_size - 1) // 2 * dilation,
                    )
                )
            )
        self.convs = nn.ModuleList(convs)
        self.conv_post = weight_norm(_kaiming_conv1d(channels, 1, kernel_size, padding=(kernel_size - 1) // 2))
        self.head = conditioning.head(channels)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        x = wav
        features = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            features.append(x)
        return head_output(self.head, x, self.conv_post(x), features, labels)
