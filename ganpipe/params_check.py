"""The whole of params.yaml checked before any stage with outputs runs (the DVC ``validate`` stage).

DVC deletes a stage's outputs before it runs that stage, so a bad value found by the stage itself
costs its previous outputs (models/generator.pt, the git-tracked metrics...). Every stage depends on
the ``validate`` stage's output, which is written only when all of params.yaml is valid and is the
same whatever the values: a bad value stops ``dvc repro`` (and ``dvc exp run``) at ``validate``
with nothing deleted, and a good change re-runs only the stages whose own params changed.

Checked: the schema (ganpipe/config.py: every key, type and allowed value) and what the train stage
builds from it: ``model.overrides`` against the variant's options (on PyTorch's ``meta`` device: no
weights are allocated) and ``train.segment_samples`` against the vocoder's hop.
"""

from __future__ import annotations

from pathlib import Path

from ganpipe.config import ConfigError, Params, load_params

# The validate stage's output: the same bytes while params.yaml is valid, so it never re-runs later stages.
STAMP_TEXT = "params.yaml is valid (ganpipe validate)\n"


def check_model(params: Params, source: str = "params.yaml") -> None:
    """Build the model the train stage would build (no weights allocated); a bad value -> ConfigError."""
    import torch

    from ganpipe.training.recipes import resolve
    from ganpipe.training.trainer import build_bundle

    try:
        with torch.device("meta"):
            bundle = build_bundle(params, n_labels=2, mel=params.mel_config())
    except (ValueError, TypeError) as exc:
        message = str(exc)
        raise ConfigError(f"{source}: model.{params.model.variant}: "
                          + (message if message.startswith("model.") else f"model.overrides: {message}")) from None
    segment = resolve(params.model.variant, params.train).segment_samples
    if bundle.kind == "vocoder" and bundle.hop_length and segment % bundle.hop_length:
        raise ConfigError(f"{source}: key 'train.segment_samples': {segment} must be a multiple of the hop length "
                          f"({bundle.hop_length}) of {params.model.variant}")


def check(path: str | Path = "params.yaml") -> Params:
    """All of ``path`` validated (schema, then the model); raises :class:`ConfigError` naming the key."""
    params = load_params(path)
    check_model(params, str(path))
    return params
