"""WaveGAN (Donahue, McAuley & Puckette, ICLR 2019), following chrisdonahue/wavegan.

Generator (DCGAN flattened to 1-D): latent ``z`` (100, uniform in [-1, 1]) -> dense to
``16 x 16d`` -> ReLU -> five transposed convs, kernel 25, stride 4 (``16d -> 8d -> 4d -> 2d -> d
-> 1`` channels, ReLU between, tanh at the end) -> 16384 samples (about 1 s at 16 kHz). ``d`` is
the model size (64). Batch norm is optional and off by default, as in the reference.

Discriminator: five strided convs, kernel 25, stride 4 (``1 -> d -> ... -> 16d``), leaky ReLU(0.2),
phase shuffle (radius 2) after each of the first four, then a dense layer to one logit (WGAN-GP
critic in the reference).

Optional class conditioning (e.g. the ten SC09 digits): the generator appends a class embedding
to ``z``; the discriminator can add a projection term and/or an auxiliary classifier (AC-GAN) on its
last feature map.

Padding: TensorFlow's ``'same'`` pads asymmetrically for these strides; here the padding is
symmetric (11) with ``output_padding=1`` on the transposed convs, giving the same lengths.
Initialisation: Glorot-uniform weights and zero biases (TensorFlow's defaults).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conditioning_options import ClassConditioningOptions
from .discriminator_conditioning import head_output
from .generator_conditioning import concat_label_embedding
from .outputs import DiscriminatorOutput
from .phase_shuffle import PhaseShuffle

WIDTH_MULTIPLIERS = (16, 8, 4, 2, 1)  # channels of the generator's feature maps, in units of d
INITIAL_LENGTH = 16


@dataclass(frozen=True)
class WaveGANConfig(ClassConditioningOptions):
    latent_dim: int = 100
    model_size: int = 64
    kernel_size: int = 25
    stride: int = 4
    use_batchnorm: bool = False
    phase_shuffle: int = 2
    sample_rate: int = 16000

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1 or self.model_size < 1:
            raise ValueError("latent_dim and model_size must be >= 1")
        if self.kernel_size < self.stride or self.stride < 1:
            raise ValueError("need kernel_size >= stride >= 1")
        if self.phase_shuffle < 0:
            raise ValueError("phase_shuffle must be >= 0")

    @property
    def output_length(self) -> int:
        return INITIAL_LENGTH * self.stride ** len(WIDTH_MULTIPLIERS)


def glorot_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _norm(channels: int, enabled: bool) -> nn.Module:
    return nn.BatchNorm1d(channels) if enabled else nn.Identity()


class WaveGANGenerator(nn.Module):
    """``z`` ``(B, latent_dim)`` [+ class ids ``(B,)``] -> waveform ``(B, 1, 16384)`` in [-1, 1]."""

    def __init__(self, config: WaveGANConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.output_length = config.output_length
        self.class_conditioning = config.generator_conditioning()
        d = config.model_size
        self.first_channels = WIDTH_MULTIPLIERS[0] * d
        self.project = nn.Linear(config.latent_dim + config.label_channels, INITIAL_LENGTH * self.first_channels)
        self.project_norm = _norm(self.first_channels, config.use_batchnorm)
        channels = [m * d for m in WIDTH_MULTIPLIERS] + [1]
        padding = (config.kernel_size - config.stride + 1) // 2
        self.upconvs = nn.ModuleList(
            nn.ConvTranspose1d(
                c_in, c_out, config.kernel_size, config.stride, padding=padding,
                output_padding=config.stride + 2 * padding - config.kernel_size,
            )
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.norms = nn.ModuleList(_norm(c, config.use_batchnorm) for c in channels[1:-1])
        glorot_init(self)

    def sample_latent(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        """The reference's latent distribution: uniform in [-1, 1]."""
        return torch.rand(batch_size, self.latent_dim, device=device) * 2 - 1

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.project(concat_label_embedding(self.class_conditioning, z, labels, "labels"))
        x = self.project_norm(F.relu(x.view(z.shape[0], self.first_channels, INITIAL_LENGTH)))
        for upconv, norm in zip(self.upconvs[:-1], self.norms):
            x = F.relu(norm(upconv(x)))
        return torch.tanh(self.upconvs[-1](x))


class WaveGANDiscriminator(nn.Module):
    """waveform ``(B, 1, 16384)`` [+ class ids] -> one logit per example (``logits[0]``: ``(B, 1)``)."""

    def __init__(self, config: WaveGANConfig) -> None:
        super().__init__()
        self.input_length = config.output_length
        d = config.model_size
        channels = [1] + [m * d for m in reversed(WIDTH_MULTIPLIERS)]
        padding = (config.kernel_size - config.stride + 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, config.kernel_size, config.stride, padding=padding)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        # batch norm (optional) follows every conv but the first, as in the reference
        self.norms = nn.ModuleList(
            [nn.Identity()] + [_norm(c, config.use_batchnorm) for c in channels[2:]]
        )
        self.phase_shuffle = PhaseShuffle(config.phase_shuffle)
        self.last_channels = channels[-1]
        self.output = nn.Linear(INITIAL_LENGTH * channels[-1], 1)
        self.head = config.discriminator_conditioning().head(channels[-1])
        glorot_init(self)

    def forward(self, wav: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        if wav.shape[1:] != (1, self.input_length):
            raise ValueError(f"expected (B, 1, {self.input_length}), got {tuple(wav.shape)}")
        x = wav
        features = []
        for index, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            x = F.leaky_relu(norm(conv(x)), 0.2)
            features.append(x)
            if index < len(self.convs) - 1:
                x = self.phase_shuffle(x)
        return head_output(self.head, x, self.output(x.flatten(1)), features, labels)
