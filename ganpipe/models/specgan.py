"""SpecGAN (Donahue, McAuley & Puckette, ICLR 2019), following chrisdonahue/wavegan.

A 2-D DCGAN on 128 x 128 normalised log-magnitude spectrograms (see
:mod:`.specgan_spectrogram`). Generator: latent ``z`` (100, uniform in [-1, 1]) -> dense to
``4 x 4 x 16d`` -> ReLU -> five transposed 2-D convs, kernel 5, stride 2 (``16d -> 8d -> 4d -> 2d ->
d -> 1``), ReLU between, tanh. Discriminator: five 2-D convs, kernel 5, stride 2, leaky ReLU(0.2),
dense to one logit. ``d`` = 64; batch norm optional (off, as in the reference). The generator owns
the :class:`.specgan_spectrogram.SpecGANSpectrogram` (with its statistics) that turns its output
into audio. Class conditioning as in :mod:`.wavegan`.
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
from .specgan_spectrogram import SpecGANSpectrogram
from .wavegan import glorot_init

WIDTH_MULTIPLIERS = (16, 8, 4, 2, 1)
INITIAL_SIZE = 4


@dataclass(frozen=True)
class SpecGANConfig(ClassConditioningOptions):
    latent_dim: int = 100
    model_size: int = 64
    kernel_size: int = 5
    use_batchnorm: bool = False
    sample_rate: int = 16000
    n_fft: int = 256
    hop_length: int = 128
    griffin_lim_iters: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.latent_dim < 1 or self.model_size < 1:
            raise ValueError("latent_dim and model_size must be >= 1")
        if self.kernel_size < 2:
            raise ValueError("kernel_size must be >= 2")
        if self.n_fft // 2 != self.image_size:
            raise ValueError(f"n_fft / 2 must equal the image size {self.image_size}")

    @property
    def image_size(self) -> int:
        return INITIAL_SIZE * 2 ** len(WIDTH_MULTIPLIERS)


def _norm(channels: int, enabled: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if enabled else nn.Identity()


class SpecGANGenerator(nn.Module):
    """``z`` ``(B, latent_dim)`` [+ class ids] -> spectrogram ``(B, 1, 128, 128)`` in [-1, 1].

    ``generator.spectrogram.to_audio(output)`` gives ``(B, 1, 16384)`` audio once the statistics
    have been fitted (``generator.spectrogram.fit_statistics(training_clips)``).
    """

    def __init__(self, config: SpecGANConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.class_conditioning = config.generator_conditioning()
        d = config.model_size
        self.first_channels = WIDTH_MULTIPLIERS[0] * d
        self.project = nn.Linear(
            config.latent_dim + config.label_channels, INITIAL_SIZE * INITIAL_SIZE * self.first_channels
        )
        self.project_norm = _norm(self.first_channels, config.use_batchnorm)
        channels = [m * d for m in WIDTH_MULTIPLIERS] + [1]
        padding = (config.kernel_size - 1) // 2
        self.upconvs = nn.ModuleList(
            nn.ConvTranspose2d(
                c_in, c_out, config.kernel_size, 2, padding=padding,
                output_padding=2 + 2 * padding - config.kernel_size,
            )
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.norms = nn.ModuleList(_norm(c, config.use_batchnorm) for c in channels[1:-1])
        self.spectrogram = SpecGANSpectrogram(
            n_fft=config.n_fft, hop_length=config.hop_length, n_frames=config.image_size,
            griffin_lim_iters=config.griffin_lim_iters,
        )
        glorot_init(self)

    def sample_latent(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        return torch.rand(batch_size, self.latent_dim, device=device) * 2 - 1

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        x = self.project(concat_label_embedding(self.class_conditioning, z, labels, "labels"))
        x = x.view(z.shape[0], self.first_channels, INITIAL_SIZE, INITIAL_SIZE)
        x = F.relu(self.project_norm(x))
        for upconv, norm in zip(self.upconvs[:-1], self.norms):
            x = F.relu(norm(upconv(x)))
        return torch.tanh(self.upconvs[-1](x))


class SpecGANDiscriminator(nn.Module):
    """spectrogram ``(B, 1, 128, 128)`` [+ class ids] -> one logit per example."""

    def __init__(self, config: SpecGANConfig) -> None:
        super().__init__()
        self.image_size = config.image_size
        d = config.model_size
        channels = [1] + [m * d for m in reversed(WIDTH_MULTIPLIERS)]
        padding = (config.kernel_size - 1) // 2
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, config.kernel_size, 2, padding=padding)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.norms = nn.ModuleList([nn.Identity()] + [_norm(c, config.use_batchnorm) for c in channels[2:]])
        self.output = nn.Linear(INITIAL_SIZE * INITIAL_SIZE * channels[-1], 1)
        self.head = config.discriminator_conditioning().head(channels[-1])
        glorot_init(self)

    def forward(self, spectrogram: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        expected = (1, self.image_size, self.image_size)
        if spectrogram.shape[1:] != expected:
            raise ValueError(f"expected (B, {', '.join(map(str, expected))}), got {tuple(spectrogram.shape)}")
        x = spectrogram
        features = []
        for conv, norm in zip(self.convs, self.norms):
            x = F.leaky_relu(norm(conv(x)), 0.2)
            features.append(x)
        return head_output(self.head, x, self.output(x.flatten(1)), features, labels)
