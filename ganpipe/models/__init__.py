"""GAN audio generators and their discriminators, built by name.

>>> from ganpipe.models import build, TINY_OVERRIDES
>>> bundle = build("hifigan_v1")                              # reference size
>>> tiny = build("hifigan_v1", **TINY_OVERRIDES["hifigan_v1"])  # for quick CPU tests

See :class:`ModelBundle` for what a build returns and :mod:`.registry` for the variants.
"""

from .bundle import ModelBundle, TensorSpec, VariantDescription
from .normalization import count_parameters, remove_weight_norm
from .outputs import DiscriminatorOutput
from .registry import TINY_OVERRIDES, VARIANTS, build, default_config, describe

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
