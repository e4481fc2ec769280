"""Weight / spectral normalisation of layers, its removal, and parameter counting.

The reference vocoders wrap their convolutions in weight normalisation, which stores every
weight as a direction ``v`` (same shape as the weight) and a per-output-channel magnitude ``g``.
Their published parameter counts include both tensors, so :func:`count_parameters` counts a model
as it stands: call :func:`remove_weight_norm` first to count (or export) plain weights.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn
from torch.nn.utils import parametrizations, parametrize
from torch.nn.utils.parametrizations import _WeightNorm

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def weight_norm(module: ModuleT) -> ModuleT:
    """Reparametrise ``module.weight`` as ``g * v / ||v||`` (norm over all dims but 0)."""
    parametrizations.weight_norm(module, name="weight", dim=0)
    return module


def spectral_norm(module: ModuleT) -> ModuleT:
    """Divide ``module.weight`` by its largest singular value (one power iteration per step)."""
    parametrizations.spectral_norm(module, name="weight")
    return module


def has_weight_norm(module: nn.Module) -> bool:
    """Whether ``module`` itself (not its children) carries a weight-norm parametrisation."""
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, _WeightNorm) for p in module.parametrizations["weight"])


def remove_weight_norm(model: nn.Module) -> int:
    """Fold every weight-norm parametrisation inside ``model`` into a plain weight.

    The computed weight is kept, so the model's output does not change. Spectral norm is left
    in place (it belongs to discriminators, which are not exported). Returns the number of layers
    that were changed.
    """
    layers = [m for m in model.modules() if has_weight_norm(m)]
    for layer in layers:
        parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
    return len(layers)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters (with weight norm: ``g`` and ``v`` both count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
