"""Weight / spectral normalisation of layers, its removal, and parameter counting.

The reference vocoders wrap their convolutions in weight normalisation, which stores every
weight as a direction ``v`` (same shape as the weight) and a per-output-channel magnitude ``g``.
Their published parameter counts include both tensors, so :func:`count_parameters` counts a model
as it stands: call :func:`remove_weight_norm` first to count (or export) plain weights.
"""

from __future__ import annotations

from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations, parametrize
from torch.nn.utils.parametrizations import _WeightNorm

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def weight_norm(module: ModuleT) -> ModuleT:
    """Reparametrise ``module.weight`` as ``g * v / ||v||`` (norm over all dims but 0)."""
    parametrizations.weight_norm(module, name="weight", dim=0)
    return module


@torch.library.custom_op("ganpipe::power_iteration_input", mutates_args=())
def _opaque_copy(x: Tensor) -> Tensor:
    """A copy of ``x`` that torch.compile's partitioner cannot recompute in the backward.

    The power iteration reads ``_u`` and then writes both vectors in place. Compiled, the min-cut
    partitioner may choose to recompute ``v`` (needed by sigma's gradient) in the backward from
    the ``_u`` buffer itself, i.e. after the discriminators' next pass has updated it: the backward
    then fails ("modified by an inplace operation") or would use the wrong vector (pytorch/pytorch
    PR 197039, open). An opaque op is saved, not recomputed, so the backward sees this pass's ``u``.
    """
    return x.clone()


@_opaque_copy.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


class _SpectralNorm(nn.Module):
    """``W / sigma(W)``, sigma by power iteration on the weight as a matrix (dims 1.. flattened).

    One iteration per training-mode forward, in the order of ``torch.nn.utils.spectral_norm`` —
    ``v <- normalize(W^T u)``, then ``u <- normalize(W v)``, ``sigma = u . W v`` — the function
    jik876's and the ParallelWaveGAN toolkit's discriminators use (torch's parametrisation updates
    ``u`` first, which gives another sigma at every step, so one reference step could not be
    reproduced). The vectors are buffers ``_u`` / ``_v``, the parametrisation's own names; at
    construction 15 iterations start them near the top singular pair, as the parametrisation does.
    """

    def __init__(self, weight: Tensor, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps
        rows, cols = weight.flatten(1).shape
        self.register_buffer("_u", F.normalize(weight.new_empty(rows).normal_(0, 1), dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(weight.new_empty(cols).normal_(0, 1), dim=0, eps=eps))
        self._power_iteration(weight.flatten(1), 15)

    @torch.no_grad()
    def _power_iteration(self, mat: Tensor, n: int) -> None:
        for _ in range(n):
            self._v = F.normalize(torch.mv(mat.T, _opaque_copy(self._u)), dim=0, eps=self.eps, out=self._v)
            self._u = F.normalize(torch.mv(mat, self._v), dim=0, eps=self.eps, out=self._u)

    def forward(self, weight: Tensor) -> Tensor:
        mat = weight.flatten(1)
        if self.training:
            self._power_iteration(mat.detach(), 1)
        u = self._u.clone(memory_format=torch.contiguous_format)
        v = self._v.clone(memory_format=torch.contiguous_format)
        return weight / torch.dot(u, torch.mv(mat, v))


def spectral_norm(module: ModuleT) -> ModuleT:
    """Divide ``module.weight`` by its largest singular value (one power iteration per training forward)."""
    parametrize.register_parametrization(module, "weight", _SpectralNorm(module.weight.detach()))
    return module


def has_weight_norm(module: nn.Module) -> bool:
    """Whether ``module`` itself (not its children) carries a weight-norm parametrisation."""
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, _WeightNorm) for p in module.parametrizations["weight"])


def remove_weight_norm(model: nn.Module) -> int:
    """Fold every weight-norm parametrisation inside ``model`` into a plain weight (the project's one
    weight-norm removal: the generators' ``remove_weight_norm`` and ganpipe.serving.backends use it).

    The computed weight is kept, so the model's output does not change. Spectral norm is left
    in place (it belongs to discriminators, which are not exported). Only the model's own layer
    instances change: not ``parametrize.remove_parametrizations``, which deletes the property from
    the layer's *class*, shared with every ``copy.deepcopy`` of the model (removing weight norm from
    a copy would break the original). Returns the number of layers that were changed.
    """
    layers = [m for m in model.modules() if has_weight_norm(m)]
    for layer in layers:
        if set(layer.parametrizations) != {"weight"} or len(layer.parametrizations["weight"]) != 1:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)  # stacked: as torch does
            continue
        original = layer.parametrizations["weight"].original0
        with torch.no_grad():
            value = layer.weight.detach().clone()
        plain_class = type(layer).__bases__[0]  # parametrize swaps in a subclass "Parametrized<Class>"
        del layer.parametrizations
        layer.__class__ = plain_class
        layer.weight = nn.Parameter(value, requires_grad=original.requires_grad)
    return len(layers)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (with weight norm: ``g`` and ``v`` both count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
