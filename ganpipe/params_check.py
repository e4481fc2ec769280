"""The whole of params.yaml checked before any stage with outputs runs (the DVC ``validate`` stage).

DVC deletes a stage's outputs before it runs that stage, so a bad value found by the stage itself
costs its previous outputs (models/generator.pt, the git-tracked metrics...). Every stage depends on
the ``validate`` stage's output, which is written only when all of params.yaml is valid and is the
same whatever the values: a bad value stops ``dvc repro`` (and ``dvc exp run``) at ``validate``
with nothing deleted, and a good change re-runs only the stages whose own params changed.

Checked: the schema (ganpipe/config.py: every key, type and allowed value) and what the train stage
builds from it: ``model.overrides`` against the variant's options (on PyTorch's ``meta`` device: no
weights are allocated) and ``train.segment_samples`` against the vocoder's hop. With
``train.fine_tune_from`` it reads the starting model (the file, or the registered model) and checks
all that the train stage would find wrong only after DVC deleted its outputs: that it is readable, its
architecture and weight shapes against ``model.*``, its discriminators when
``train.fine_tune_discriminator``, and its mel against the features' (:func:`check_starting_model`).
With ``mel.preset: from_model`` the features' mel and statistics are the starting model's (its sample
rate checked against ``audio.sample_rate``); :func:`resolve` returns that mel for ``data/mel.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ganpipe.config import ConfigError, Params, load_params

if TYPE_CHECKING:
    from ganpipe.features import FeatureMel
    from ganpipe.training.starting_model import StartingModel

# The validate stage's output: the same bytes while params.yaml is valid, so it never re-runs later stages.
STAMP_TEXT = "params.yaml is valid (ganpipe validate)\n"


def check_model(params: Params, source: str = "params.yaml", mel: FeatureMel | None = None,
                start: StartingModel | None = None) -> None:
    """Build the model the train stage would build (no weights allocated); a bad value -> ConfigError.
    ``mel``: the features' mel (default: params.yaml's); ``start``: the starting model to compare with."""
    import torch

    from ganpipe.models import describe
    from ganpipe.training.recipes import resolve
    from ganpipe.training.setup import build_bundle

    try:
        with torch.device("meta"):
            bundle = build_bundle(params, n_labels=2, mel=mel.config if mel else params.mel_config())
    except (ValueError, TypeError) as exc:
        message = str(exc)
        raise ConfigError(f"{source}: model.{params.model.variant}: "
                          + (message if message.startswith("model.") else f"model.overrides: {message}")) from None
    segment = resolve(params.model.variant, params.train).segment_samples
    if bundle.kind == "vocoder" and bundle.hop_length and segment % bundle.hop_length:
        raise ConfigError(f"{source}: key 'train.segment_samples': {segment} must be a multiple of the hop length "
                          f"({bundle.hop_length}) of {params.model.variant}")
    if start is not None:  # the label count is the corpus's, not known here
        labels = params.model.conditioning == "labels"
        skip = (describe(params.model.variant).label_option,) if labels else ()
        problems = start.architecture_mismatches(bundle, skip)
        if not problems and not labels:  # the same build options: the weights' names and shapes too
            problems = start.weight_mismatches(bundle, params.train.fine_tune_discriminator)
        if mel is not None and mel.origin != "train.fine_tune_from":
            problems += start.feature_mel_mismatches(mel.config)
        if problems:
            raise ConfigError(f"{source}: {start.explain(problems)}")


def check_starting_model(params: Params, source: str = "params.yaml") -> StartingModel:
    """``train.fine_tune_from`` read (a file, or a registered model fetched) and checked for what needs
    no model built: readable, and with discriminators when ``train.fine_tune_discriminator``."""
    from ganpipe.training import starting_model

    t = params.train
    key = "key 'train.fine_tune_from'" + (" (mel.preset: from_model)" if params.mel.preset == "from_model" else "")
    try:
        start = starting_model.load(t.fine_tune_from)
        if t.fine_tune_discriminator:
            start.discriminator_weights()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{source}: {key}: {exc}") from None
    return start


def resolve(path: str | Path = "params.yaml") -> tuple[Params, FeatureMel]:
    """All of ``path`` validated (schema, the starting model of mel.preset from_model, then the model)
    and the features' mel; raises :class:`ConfigError` naming the key."""
    from ganpipe.features import FeatureMel

    params = load_params(path)
    start = None
    if params.train.fine_tune_from:
        start = check_starting_model(params, str(path))
    if params.mel.preset == "from_model":
        try:
            mel = start.feature_mel(params.audio.sample_rate)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: key 'train.fine_tune_from' (mel.preset: from_model): {exc}") from None
    else:
        mel = FeatureMel(params.mel_config())
    check_model(params, str(path), mel, start)
    return params, mel


def check(path: str | Path = "params.yaml") -> Params:
    """All of ``path`` validated (schema, then the model); raises :class:`ConfigError` naming the key."""
    return resolve(path)[0]
