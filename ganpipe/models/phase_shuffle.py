"""WaveGAN's phase shuffle (Donahue et al., ICLR 2019): shift activations in time by a random
``-n..n`` samples and fill the vacated edge by reflection, so the discriminator cannot key on the
exact phase of periodic artefacts of transposed convolutions.

The reference draws one shift per batch; here every example gets its own shift (same
distribution, one less source of batch-level correlation).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def reflect_shift(x: Tensor, shifts: Tensor) -> Tensor:
    """Shift each example of ``x`` ``(B, C, T)`` by ``shifts[b]`` samples (positive = later in time).

    ``out[b, :, t] = x[b, :, r(t - shifts[b])]`` where ``r`` reflects indices at the edges
    (``r(-i) = i``, ``r(T - 1 + i) = T - 1 - i``), i.e. reflect padding without repeating the edge
    sample. ``|shift|`` must be smaller than ``T``.
    """
    batch, channels, length = x.shape
    if shifts.shape != (batch,):
        raise ValueError(f"shifts must have shape ({batch},), got {tuple(shifts.shape)}")
    if length > 1 and shifts.abs().max() >= length:
        raise ValueError(f"shifts must be smaller than the length {length} in magnitude")
    source = torch.arange(length, device=x.device).unsqueeze(0) - shifts.to(x.device).unsqueeze(1)
    source = source.abs()  # reflect at the start
    source = (length - 1) - (length - 1 - source).abs()  # reflect at the end
    return x.gather(2, source.unsqueeze(1).expand(batch, channels, length))


class PhaseShuffle(nn.Module):
    """Random per-example :func:`reflect_shift` by ``-radius..radius`` samples, in training mode only."""

    def __init__(self, radius: int) -> None:
        super().__init__()
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        self.radius = radius

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.radius == 0:
            return x
        shifts = torch.randint(-self.radius, self.radius + 1, (x.shape[0],), device=x.device)
        return reflect_shift(x, shifts)

    def extra_repr(self) -> str:
        return f"radius={self.radius}"
