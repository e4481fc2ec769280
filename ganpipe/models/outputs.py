"""What every discriminator in ganpipe returns."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class DiscriminatorOutput(NamedTuple):
    """Outputs of a (possibly multi-part) discriminator on one batch.

    logits:
        One tensor per sub-discriminator (period / scale / the single network), each of shape
        ``(B, N)``: ``N`` patch logits flattened (``N == 1`` for a global discriminator).
        Unbounded scores; the loss (LSGAN, hinge, WGAN or BCE-with-logits) is the trainer's.
    features:
        Per sub-discriminator, the hidden activations after each non-linearity, in order, for
        feature-matching losses. The final logit map is *not* repeated here.
    class_logits:
        Per sub-discriminator, ``(B, n_classes)`` scores of the auxiliary classifier (AC-GAN),
        or ``None`` when the discriminator has no classifier head.
    final_matched:
        Per sub-discriminator, whether feature matching that includes the final outputs
        (``fm_include_final``) compares this one's; ``None``: all do. BigVGAN's CQT discriminator
        keeps its output out of feature matching, as its reference does.
    groups:
        Per sub-discriminator, the name of the bundle discriminator it belongs to (``mpd``,
        ``mrd``...): set where a bundle's discriminators run together (the trainer's
        ``Discriminators``), for per-discriminator loss weights and averaging; ``None`` elsewhere.
    """

    logits: list[Tensor]
    features: list[list[Tensor]]
    class_logits: list[Tensor] | None
    final_matched: list[bool] | None = None
    groups: list[str] | None = None


def merge_outputs(parts: list[DiscriminatorOutput]) -> DiscriminatorOutput:
    """Concatenate the per-sub-discriminator lists of several outputs, in order."""
    logits = [t for part in parts for t in part.logits]
    features = [f for part in parts for f in part.features]
    has_classes = [part.class_logits is not None for part in parts]
    if any(has_classes) and not all(has_classes):
        raise ValueError("cannot merge outputs with and without class logits")
    class_logits = [t for part in parts for t in (part.class_logits or [])] if all(has_classes) else None
    final_matched = None
    if any(part.final_matched is not None for part in parts):
        final_matched = [m for part in parts for m in (part.final_matched or [True] * len(part.logits))]
    return DiscriminatorOutput(logits, features, class_logits, final_matched)
