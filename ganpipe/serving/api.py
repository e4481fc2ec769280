"""Using a registered model from Python: a vocoder (mel -> waveform, or waveform -> waveform:
copy-synthesis) or an unconditional generator (latents, or a number of clips + a seed -> waveforms).
``ganpipe.synthesis`` re-exports this module (the documented import path).

>>> from ganpipe.synthesis import load_vocoder
>>> voc = load_vocoder("models:/ganpipe-demo-hifigan_v3@champion")   # tracking store: see below
>>> wav = voc.mel_to_audio(mel)                       # (n_mels, frames) -> (frames * hop,)
>>> wav = voc.mel_to_audio(mel, mel_config=my_cfg)    # MelConfigMismatch if my_cfg differs
>>> out = voc.copy_synthesis(wav, sample_rate=22050)  # resample=True: audio at another rate
>>> mel = voc.compute_mel(wav, 22050)                 # the model's own (un-normalised) log-mel

The model checks what it can see (number of mel bins, shapes, finite values); a consumer that
computed its mels with other parameters (hop, fmax, log base, ...) must say so with ``mel_config``
(a :class:`~ganpipe.mel.MelConfig`, a dict or a JSON file such as data/features/mel_config.json):
any difference from the model's configuration raises :class:`MelConfigMismatch` naming each
differing parameter, instead of producing wrong audio.

>>> from ganpipe.synthesis import load_unconditional
>>> gen = load_unconditional("models:/ganpipe-sc09-wavegan@champion")
>>> clips = gen.generate(n=4, seed=0)                 # (4, samples) at gen.sample_rate; same seed, same clips
>>> clips = gen.generate(latents=z)                   # z: (batch, gen.latent_dim)
>>> clips = gen.generate(n=4, seed=1, label="seven")  # class-conditioned models: a label name or index

One call, with the rules of ``ganpipe synthesize`` (:mod:`ganpipe.serving.rules`: exactly one of
``mel``/``wav``; ``.npy`` and audio files read; another sample rate refused unless ``resample=True``;
too-short input refused; the other kind's options refused):

>>> audio, sr = synthesize("models:/NAME@champion", wav="in.wav", resample=True)
>>> audio, sr = synthesize("models:/NAME@champion", mel="x.npy")
>>> clips, sr = synthesize("models:/ganpipe-sc09-wavegan@champion", n=4, seed=0)

:func:`load_model` gives either kind (from the model's metadata); :func:`load_vocoder` and
:func:`load_unconditional` refuse the other kind with a :class:`SynthesisError` that says so.

Tracking store of ``models:/`` URIs: ``tracking_uri`` if given, else ``$MLFLOW_TRACKING_URI``, else
the ``tracking.tracking_uri`` of ``./params.yaml`` (the project's sqlite database).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.mel import MelConfig
from ganpipe.mel_kind import mel_range_warning
from ganpipe.serving.contract import (
    MelConfigMismatch,
    MelRangeWarning,
    SynthesisError,
    as_mel_config,
)
from ganpipe.serving.model import UnconditionalGenerator, Vocoder, load_model, model_summary
from ganpipe.serving.rules import Request, load_npy, read_waveform

__all__ = [
    "MelConfigMismatch", "MelRangeWarning", "SynthesisError", "UnconditionalGenerator", "Vocoder",
    "as_mel_config", "generate", "load_model", "load_unconditional", "load_vocoder", "mel_range_warning",
    "model_summary", "synthesize",
]

Model = Vocoder | UnconditionalGenerator


def load_vocoder(model_uri: str, tracking_uri: str | None = None) -> Vocoder:
    """Load a registered ganpipe vocoder; an unconditional model raises :class:`SynthesisError`."""
    model = load_model(model_uri, tracking_uri)
    if not isinstance(model, Vocoder):
        raise SynthesisError(f"{model_summary(model)}, not a vocoder: generate with load_unconditional(...)"
                             ".generate(n=, seed=) (ganpipe synthesize --n N --seed S)")
    return model


def load_unconditional(model_uri: str, tracking_uri: str | None = None) -> UnconditionalGenerator:
    """Load a registered unconditional generator; a vocoder raises :class:`SynthesisError`."""
    model = load_model(model_uri, tracking_uri)
    if not isinstance(model, UnconditionalGenerator):
        raise SynthesisError(f"{model_summary(model)}, not an unconditional generator: give it mels "
                             "(load_vocoder(...).mel_to_audio; ganpipe synthesize --mel/--wav)")
    return model


def synthesize(model: str | Model, *, mel: Any = None, wav: Any = None, sample_rate: int | None = None,
               mel_config: MelConfig | dict[str, Any] | str | Path | None = None, speaker: str | None = None,
               resample: bool = False, n: int | None = None, seed: int | None = None, latents: Any = None,
               label: str | int | None = None, backend: str = "torch",
               tracking_uri: str | None = None) -> tuple[np.ndarray, int]:
    """What ``ganpipe synthesize`` does, by the same rules: ``(audio, sample_rate)`` of ``model`` (a
    URI, a generator file, or a loaded model). Vocoders: ``mel`` (array or ``.npy``; ``mel_config``:
    its parameters, checked) or ``wav`` (audio file, or array + ``sample_rate``; ``resample``: at
    another rate, resample instead of failing) -> ``(samples,)`` (``(batch, samples)`` for a batch
    of mels). Unconditional models: ``n`` clips (default 1) from ``seed`` (default 0), or ``latents``
    (array or ``.npy``) -> ``(clips, samples)``. A mel of another kind than the model's warns
    (:class:`MelRangeWarning`, naming the file)."""
    request = Request(mel=mel, wav=wav, sample_rate=sample_rate, mel_config=mel_config, speaker=speaker,
                      resample=resample or False, n=n, seed=seed, latents=latents, label=label, backend=backend)
    request.check()
    loaded = model if isinstance(model, (Vocoder, UnconditionalGenerator)) else load_model(model, tracking_uri)
    request.check_for(isinstance(loaded, Vocoder), model_summary(loaded))
    if isinstance(loaded, UnconditionalGenerator):
        z = None if request.latents is None else load_npy(request.latents)
        clips = loaded.generate(n=request.clip_count(), seed=request.seed or 0, latents=z, label=request.label,
                                backend=backend)
        return clips, loaded.sample_rate
    return _vocode(loaded, request), loaded.sample_rate


def _vocode(voc: Vocoder, request: Request) -> np.ndarray:
    if request.mel is not None:
        array = load_npy(request.mel)
        if array.ndim in (2, 3) and (message := voc.mel_range_warning(array)):
            named = f"{request.mel}: {message}" if isinstance(request.mel, (str, Path)) else message
            warnings.warn(named, MelRangeWarning, stacklevel=3)
        return voc.mel_to_audio(array, mel_config=request.mel_config, speaker=request.speaker,
                                backend=request.backend, warn_range=False)
    signal, sr, name = read_waveform(request.wav, request.sample_rate)
    return voc.copy_synthesis(signal, sr, speaker=request.speaker, backend=request.backend,
                              resample=request.resample, name=name)


def generate(model_uri: str, *, n: int | None = None, seed: int = 0, latents: np.ndarray | None = None,
             label: str | int | None = None, backend: str = "torch",
             tracking_uri: str | None = None) -> tuple[np.ndarray, int]:
    """One call: ``(clips (batch, samples), sample_rate)`` from the registered unconditional model
    ``model_uri``: ``n`` clips from ``seed``, or one per row of ``latents``."""
    gen = load_unconditional(model_uri, tracking_uri)
    return gen.generate(n=n, seed=seed, latents=latents, label=label, backend=backend), gen.sample_rate
