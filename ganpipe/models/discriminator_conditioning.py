"""Label conditioning of discriminators: projection (Miyato & Koyama 2018) and AC-GAN heads.

A :class:`ClassConditionalHead` sits on the last hidden feature map ``h`` of a (sub-)discriminator:

* projection: adds ``<embed(y), h>`` to the unconditional logits. For patch discriminators, whose
  logit map has the same positions as ``h``, the inner product is taken per position; for global
  discriminators ``h`` is summed over positions first (the paper's formulation).
* auxiliary classifier (Odena et al. 2017): a linear layer on ``h`` averaged over positions, giving
  class logits for a cross-entropy loss on real and generated samples.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from .outputs import DiscriminatorOutput


class ClassConditionalHead(nn.Module):
    def __init__(self, channels: int, n_classes: int, projection: bool, aux_classifier: bool) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {n_classes}")
        if not (projection or aux_classifier):
            raise ValueError("a conditional head needs projection and/or aux_classifier")
        self.n_classes = n_classes
        self.embedding = nn.Embedding(n_classes, channels) if projection else None
        self.classifier = nn.Linear(channels, n_classes) if aux_classifier else None
        if self.embedding is not None:
            nn.init.normal_(self.embedding.weight, std=channels**-0.5)

    @property
    def needs_labels(self) -> bool:
        return self.embedding is not None

    def forward(self, hidden: Tensor, logits: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``hidden``: (B, C, *positions) or (B, C); ``logits``: (B, 1, *positions) or (B, 1)."""
        if self.embedding is not None:
            if labels is None:
                raise ValueError("this discriminator uses class projection; pass labels")
            embedded = self.embedding(labels)  # (B, C)
            if hidden.dim() > 2 and logits.shape[2:] == hidden.shape[2:]:
                weights = embedded.view(*embedded.shape, *([1] * (hidden.dim() - 2)))
                logits = logits + (weights * hidden).sum(dim=1, keepdim=True)
            else:
                pooled = hidden.flatten(2).sum(dim=-1) if hidden.dim() > 2 else hidden
                projection = (embedded * pooled).sum(dim=1, keepdim=True)
                logits = logits + projection.view(-1, *([1] * (logits.dim() - 1)))
        class_logits = None
        if self.classifier is not None:
            pooled = hidden.flatten(2).mean(dim=-1) if hidden.dim() > 2 else hidden
            class_logits = self.classifier(pooled)
        return logits, class_logits


@dataclass(frozen=True)
class DiscriminatorConditioning:
    """Which heads every sub-discriminator gets; all off means an unconditional discriminator."""

    n_classes: int = 0
    projection: bool = False
    aux_classifier: bool = False

    def __post_init__(self) -> None:
        if (self.projection or self.aux_classifier) and self.n_classes < 1:
            raise ValueError("discriminator projection / aux classifier need n_classes >= 1")

    @property
    def enabled(self) -> bool:
        return self.projection or self.aux_classifier

    def head(self, channels: int) -> ClassConditionalHead | None:
        if not self.enabled:
            return None
        return ClassConditionalHead(channels, self.n_classes, self.projection, self.aux_classifier)


def apply_head(
    head: ClassConditionalHead | None, hidden: Tensor, logits: Tensor, labels: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """Run an optional head; an unconditional discriminator refuses labels rather than ignoring them."""
    if head is None:
        if labels is not None:
            raise ValueError("this discriminator was built without class conditioning; pass labels=None")
        return logits, None
    return head(hidden, logits, labels)


def head_output(
    head: ClassConditionalHead | None, hidden: Tensor, logits: Tensor, features: list[Tensor],
    labels: Tensor | None,
) -> DiscriminatorOutput:
    """A single discriminator's output: patch logits flattened to ``(B, N)`` after the optional head."""
    logits, class_logits = apply_head(head, hidden, logits, labels)
    return DiscriminatorOutput([logits.flatten(1)], [features], None if class_logits is None else [class_logits])
