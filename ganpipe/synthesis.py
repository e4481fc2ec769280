"""The public Python API of a trained model, by its documented name: ``from ganpipe.synthesis import
load_vocoder``. It is :mod:`ganpipe.serving.api` (see there); nothing is defined here."""

from ganpipe.serving.api import (
    MelConfigMismatch,
    MelRangeWarning,
    SynthesisError,
    UnconditionalGenerator,
    Vocoder,
    as_mel_config,
    generate,
    load_model,
    load_unconditional,
    load_vocoder,
    mel_range_warning,
    model_summary,
    synthesize,
)

__all__ = [
    "MelConfigMismatch", "MelRangeWarning", "SynthesisError", "UnconditionalGenerator", "Vocoder",
    "as_mel_config", "generate", "load_model", "load_unconditional", "load_vocoder", "mel_range_warning",
    "model_summary", "synthesize",
]
