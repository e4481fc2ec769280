""":class:`ModelBundle`: a built generator, its discriminators, and what the trainer needs to know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from .normalization import count_parameters

ModelKind = Literal["vocoder", "unconditional"]
Conditioning = Literal["none", "speaker", "class"]
AdversarialLoss = Literal["lsgan", "hinge", "wgan-gp", "bce"]


@dataclass(frozen=True)
class TensorSpec:
    """Per-example tensor layout; ``None`` marks the variable axis (mel frames / samples).

    names: ``mel`` (log-mel, ``(n_mels, frames)``), ``latent`` (``(latent_dim,)``), ``waveform``
    (``(1, samples)``, in [-1, 1]), ``log_magnitude`` (SpecGAN's normalised ``(1, 128, 128)``),
    ``mel_frame`` (``(n_mels,)``).
    """

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class ModelBundle:
    """Everything :func:`ganpipe.models.build` makes for one variant.

    variant / config: the registry name and the resolved hyper-parameters;
        ``build(variant, **config)`` rebuilds the same architecture.
    kind: ``vocoder`` (mel -> audio; ``generator(mel, speaker=None)``) or ``unconditional``
        (latent -> sample; ``generator(z, labels=None)``, ``generator.sample_latent(n)``).
    discriminators: every adversary, each called as ``d(x, labels=None)`` and returning a
        :class:`~ganpipe.models.outputs.DiscriminatorOutput`.
    hop_length: vocoders: samples generated per mel frame (the generator's upsampling factor);
        ``None`` for unconditional models.
    min_frames: vocoders: the fewest mel frames the generator accepts (MelGAN-style reflection
        padding needs a few); ``None`` for unconditional models.
    conditioning / n_classes: label conditioning of the generator (speaker ids for vocoders, class
        ids otherwise) and the number of ids (0 when ``none``).
    discriminator_uses_labels: the discriminators have a projection head and need ``labels``.
    discriminator_classifies: the discriminators return AC-GAN ``class_logits``.
    adversarial_loss: the loss the reference trains this model with (a recommendation).
    """

    variant: str
    kind: ModelKind
    generator: nn.Module
    discriminators: nn.ModuleDict
    sample_rate: int
    hop_length: int | None
    min_frames: int | None
    input_spec: TensorSpec
    output_spec: TensorSpec
    conditioning: Conditioning
    n_classes: int
    discriminator_uses_labels: bool
    discriminator_classifies: bool
    adversarial_loss: AdversarialLoss
    config: dict[str, Any]

    def parameter_counts(self) -> dict[str, int]:
        """``{'generator': n, 'discriminator.<name>': n, ...}`` as the modules stand."""
        counts = {"generator": count_parameters(self.generator)}
        for name, module in self.discriminators.items():
            counts[f"discriminator.{name}"] = count_parameters(module)
        return counts
