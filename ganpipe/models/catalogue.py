"""The names of the variants, importable without torch.

``params.yaml`` is validated at load by :mod:`ganpipe.config`, which the data stages import too;
importing the models (torch) there would make every model edit re-run download and prepare. So
the one list of names lives here, and :mod:`.registry` checks at import that it builds exactly
these. Adding a variant: its model module, its entry in ``registry._REGISTRY``, its name here and
its recipe row (ganpipe/training/recipes.py).
"""

from __future__ import annotations

VARIANT_NAMES: tuple[str, ...] = (
    "hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "multiband_melgan", "parallel_wavegan",
    "vocos", "wavegan", "specgan", "mel_mlp_gan", "bigvgan_v2", "bigvgan_base",
)
