"""Config fields shared by every model that can be label-conditioned (all default to off).

Vocoders are conditioned on speaker ids (``n_speakers``), latent-driven generators on class ids
(``n_classes``, e.g. the ten SC09 digits). ``discriminator_projection`` /
``discriminator_aux_classifier`` add the heads of :mod:`.discriminator_conditioning` to every
sub-discriminator, with the same labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from .discriminator_conditioning import DiscriminatorConditioning
from .generator_conditioning import LabelEmbeddingConcat


def _check(n_labels: int, embed_dim: int, projection: bool, aux: bool, names: tuple[str, str]) -> None:
    count_name, dim_name = names
    if n_labels < 0:
        raise ValueError(f"{count_name} must be >= 0, got {n_labels}")
    if n_labels > 0 and embed_dim < 1:
        raise ValueError(f"{dim_name} must be >= 1 when {count_name} > 0, got {embed_dim}")
    if (projection or aux) and n_labels == 0:
        raise ValueError(
            f"discriminator_projection / discriminator_aux_classifier need {count_name} > 0"
        )


@dataclass(frozen=True)
class SpeakerConditioningOptions:
    n_speakers: int = 0
    speaker_embed_dim: int = 64
    discriminator_projection: bool = False
    discriminator_aux_classifier: bool = False

    def __post_init__(self) -> None:
        _check(
            self.n_speakers, self.speaker_embed_dim, self.discriminator_projection,
            self.discriminator_aux_classifier, ("n_speakers", "speaker_embed_dim"),
        )

    @property
    def n_labels(self) -> int:
        return self.n_speakers

    @property
    def label_channels(self) -> int:
        """Extra input channels the generator receives (0 when unconditioned)."""
        return self.speaker_embed_dim if self.n_speakers else 0

    def generator_conditioning(self) -> LabelEmbeddingConcat | None:
        return LabelEmbeddingConcat(self.n_speakers, self.speaker_embed_dim) if self.n_speakers else None

    def discriminator_conditioning(self) -> DiscriminatorConditioning:
        return DiscriminatorConditioning(
            self.n_speakers, self.discriminator_projection, self.discriminator_aux_classifier
        )


@dataclass(frozen=True)
class ClassConditioningOptions:
    n_classes: int = 0
    class_embed_dim: int = 16
    discriminator_projection: bool = False
    discriminator_aux_classifier: bool = False

    def __post_init__(self) -> None:
        _check(
            self.n_classes, self.class_embed_dim, self.discriminator_projection,
            self.discriminator_aux_classifier, ("n_classes", "class_embed_dim"),
        )

    @property
    def n_labels(self) -> int:
        return self.n_classes

    @property
    def label_channels(self) -> int:
        """Extra latent dimensions the generator receives (0 when unconditioned)."""
        return self.class_embed_dim if self.n_classes else 0

    def generator_conditioning(self) -> LabelEmbeddingConcat | None:
        return LabelEmbeddingConcat(self.n_classes, self.class_embed_dim) if self.n_classes else None

    def discriminator_conditioning(self) -> DiscriminatorConditioning:
        return DiscriminatorConditioning(
            self.n_classes, self.discriminator_projection, self.discriminator_aux_classifier
        )
