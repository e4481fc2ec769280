"""Label conditioning of generators: a learned embedding concatenated to the input.

For vocoders the label is a speaker id and its embedding is broadcast over time as extra channels
of the mel spectrogram ``(B, n_mels, F) -> (B, n_mels + E, F)``; for latent-driven generators the
label is a class id and its embedding is appended to the latent ``(B, Z) -> (B, Z + E)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LabelEmbeddingConcat(nn.Module):
    """Append ``embedding(label)`` to every position of the input along dimension 1."""

    def __init__(self, n_labels: int, embed_dim: int) -> None:
        super().__init__()
        if n_labels < 1 or embed_dim < 1:
            raise ValueError(f"need n_labels >= 1 and embed_dim >= 1, got {n_labels}, {embed_dim}")
        self.n_labels = n_labels
        self.embed_dim = embed_dim
        self.embedding = nn.Embedding(n_labels, embed_dim)

    def forward(self, inputs: Tensor, labels: Tensor) -> Tensor:
        if labels.shape != (inputs.shape[0],):
            raise ValueError(f"labels must have shape ({inputs.shape[0]},), got {tuple(labels.shape)}")
        embedded = self.embedding(labels)  # (B, E)
        embedded = embedded.view(*embedded.shape, *([1] * (inputs.dim() - 2)))
        embedded = embedded.expand(-1, -1, *inputs.shape[2:])
        return torch.cat([inputs, embedded.to(inputs.dtype)], dim=1)


def concat_label_embedding(
    conditioning: LabelEmbeddingConcat | None, inputs: Tensor, labels: Tensor | None, what: str
) -> Tensor:
    """Apply optional conditioning, insisting that labels are given exactly when it exists."""
    if conditioning is None:
        if labels is not None:
            raise ValueError(f"this generator was built without {what} conditioning; pass {what}=None")
        return inputs
    if labels is None:
        raise ValueError(f"this generator is {what}-conditioned ({conditioning.n_labels} ids); pass {what} ids")
    return conditioning(inputs, labels)
