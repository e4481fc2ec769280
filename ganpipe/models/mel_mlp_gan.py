"""The smallest GAN in ganpipe: fully connected networks on single 80-bin log-mel frames.

Generator: ``z`` (100, standard normal) -> 256 -> leaky ReLU(0.2) -> 512 -> batch norm -> leaky
ReLU(0.2) -> 80 (linear output, so frames keep the mel features' own scale).
Discriminator: 80 -> 512 -> leaky ReLU(0.2) -> 256 -> leaky ReLU(0.2) -> 1 logit, trained with
binary cross-entropy (:func:`bce_discriminator_loss`, :func:`bce_generator_loss`, both on logits).
It is a baseline / smoke test for the pipeline, not a vocoder.
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

LRELU_SLOPE = 0.2


@dataclass(frozen=True)
class MelMLPGANConfig(ClassConditioningOptions):
    latent_dim: int = 100
    n_mels: int = 80
    generator_hidden: tuple[int, int] = (256, 512)
    discriminator_hidden: tuple[int, int] = (512, 256)
    sample_rate: int = 22050

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.generator_hidden) != 2 or len(self.discriminator_hidden) != 2:
            raise ValueError("generator_hidden and discriminator_hidden take two layer widths each")
        if min(self.latent_dim, self.n_mels, *self.generator_hidden, *self.discriminator_hidden) < 1:
            raise ValueError("all widths must be >= 1")


class MelMLPGenerator(nn.Module):
    """``z`` ``(B, latent_dim)`` [+ class ids] -> mel frame ``(B, n_mels)``."""

    def __init__(self, config: MelMLPGANConfig) -> None:
        super().__init__()
        self.config = config
        self.latent_dim = config.latent_dim
        self.class_conditioning = config.generator_conditioning()
        first, second = config.generator_hidden
        self.layers = nn.Sequential(
            nn.Linear(config.latent_dim + config.label_channels, first),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Linear(first, second),
            nn.BatchNorm1d(second),
            nn.LeakyReLU(LRELU_SLOPE),
            nn.Linear(second, config.n_mels),
        )

    def sample_latent(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        return torch.randn(batch_size, self.latent_dim, device=device)

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.layers(concat_label_embedding(self.class_conditioning, z, labels, "labels"))


class MelMLPDiscriminator(nn.Module):
    """mel frame ``(B, n_mels)`` [+ class ids] -> one logit per frame."""

    def __init__(self, config: MelMLPGANConfig) -> None:
        super().__init__()
        first, second = config.discriminator_hidden
        self.hidden = nn.ModuleList([nn.Linear(config.n_mels, first), nn.Linear(first, second)])
        self.output = nn.Linear(second, 1)
        self.head = config.discriminator_conditioning().head(second)

    def forward(self, frames: Tensor, labels: Tensor | None = None) -> DiscriminatorOutput:
        x = frames
        features = []
        for layer in self.hidden:
            x = F.leaky_relu(layer(x), LRELU_SLOPE)
            features.append(x)
        return head_output(self.head, x, self.output(x), features, labels)


def bce_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """``BCE(D(real), 1) + BCE(D(fake), 0)``, on logits."""
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def bce_generator_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``BCE(D(G(z)), 1)``, on logits."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
