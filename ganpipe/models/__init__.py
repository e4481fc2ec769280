"""GAN audio generators and their discriminators, built by name.

>>> from ganpipe.models import build, TINY_OVERRIDES
>>> bundle = build("hifigan_v1")                              # reference size
>>> tiny = build("hifigan_v1", **TINY_OVERRIDES["hifigan_v1"])  # for quick CPU tests

See :class:`ModelBundle` for what a build returns and :mod:`.variants` for the variants.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .bundle import ModelBundle, TensorSpec, VariantDescription
    from .normalization import count_parameters, remove_weight_norm
    from .outputs import DiscriminatorOutput
    from .variants import TINY_OVERRIDES, VARIANTS, build, default_config, describe

# Resolved on first use, so that the torch-free ``ganpipe.models.catalogue`` (imported by the
# config) does not import torch through this package.
_LAZY = {
    "ModelBundle": ".bundle", "TensorSpec": ".bundle", "VariantDescription": ".bundle",
    "count_parameters": ".normalization", "remove_weight_norm": ".normalization",
    "DiscriminatorOutput": ".outputs",
    "TINY_OVERRIDES": ".variants", "VARIANTS": ".variants", "build": ".variants",
    "default_config": ".variants", "describe": ".variants",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DiscriminatorOutput",
    "ModelBundle",
    "TINY_OVERRIDES",
    "TensorSpec",
    "VARIANTS",
    "VariantDescription",
    "build",
    "count_parameters",
    "default_config",
    "describe",
    "remove_weight_norm",
]
