"""The rules of a synthesis request, one copy for the command line (``ganpipe synthesize``), the Python
API (:mod:`ganpipe.serving.api`, :mod:`ganpipe.synthesis`) and the served model (its cores):

* which inputs go together: a vocoder takes exactly one of a mel or a waveform (a mel configuration
  only with a mel); an unconditional model takes a number of clips (+ seed) or latents; the options
  of one kind of model are refused by the other;
* how inputs are read: ``.npy`` arrays (no pickles), audio files (corrupt ones named);
* the sample-rate policy: audio at another rate than the model's is refused unless resampling is
  asked for (soxr, :func:`ganpipe.audio.resample`);
* the minimum length: the generator's fewest mel frames (times the hop, for a waveform).

Option names in messages are the CLI's (``--mel``); the Python API's keywords are the same words.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.serving.contract import SynthesisError

VOCODER_OPTIONS = ("mel", "wav", "mel_config", "speaker", "resample")
LATENT_OPTIONS = ("n", "seed", "latents", "label")


@dataclass(frozen=True)
class Request:
    """What ``ganpipe synthesize`` / :func:`ganpipe.serving.api.synthesize` is asked. ``mel``,
    ``wav`` and ``latents`` are arrays or files (``.npy``; ``wav``: any audio file, or an array with
    ``sample_rate``)."""

    mel: Any = None
    wav: Any = None
    sample_rate: int | None = None
    mel_config: Any = None
    speaker: str | None = None
    resample: bool = False
    n: int | None = None
    seed: int | None = None
    latents: Any = None
    label: str | int | None = None
    backend: str = "torch"

    def _given(self, names: tuple[str, ...]) -> list[str]:
        values = {k: getattr(self, k) for k in names}
        return ["--" + k.replace("_", "-") for k, v in values.items() if v is not None and v is not False]

    def check(self) -> None:
        """The rules that need no model: :class:`SynthesisError` naming the options that clash."""
        vocoder, latent = self._given(VOCODER_OPTIONS), self._given(LATENT_OPTIONS)
        if vocoder and latent:
            raise SynthesisError(f"{', '.join(vocoder)} (vocoders) and {', '.join(latent)} (unconditional models) "
                                 "do not go together")
        if self.mel is not None and self.wav is not None:
            raise SynthesisError("give exactly one of --mel or --wav")
        if self.wav is not None and self.mel_config is not None:
            raise SynthesisError("--mel-config describes the mels given with --mel; with --wav the model computes its "
                                 "own mel")
        if self.n is not None and self.latents is not None:
            raise SynthesisError("give --n (with --seed) or --latents, not both")
        if self.sample_rate is not None and (self.wav is None or isinstance(self.wav, (str, Path))):
            raise SynthesisError("--sample-rate goes with a waveform given as an array (a file says its own rate)")

    def check_for(self, is_vocoder: bool, summary: str) -> None:
        """The rules of the loaded model's kind; ``summary``: what the model is (for the message)."""
        if not is_vocoder and (vocoder := self._given(VOCODER_OPTIONS)):
            raise SynthesisError(f"{summary}: the options {', '.join(vocoder)} are for vocoders; generate with "
                                 "--n N --seed S (or --latents z.npy)")
        if is_vocoder and (latent := self._given(LATENT_OPTIONS)):
            raise SynthesisError(f"{summary}: the options {', '.join(latent)} are for unconditional models; give "
                                 "--mel or --wav")
        if is_vocoder and self.mel is None and self.wav is None:
            raise SynthesisError(f"{summary}: give exactly one of --mel or --wav")

    def clip_count(self) -> int | None:
        """``n``: one clip when neither ``n`` nor latents are given."""
        return 1 if self.n is None and self.latents is None else self.n

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_npy(source: Any) -> np.ndarray:
    """An array, or the array of a ``.npy`` file (no pickles); :class:`SynthesisError` naming the file."""
    if not isinstance(source, (str, Path)):
        return np.asarray(source)
    try:
        return np.load(source, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SynthesisError(f"{source}: cannot read a .npy array ({exc})") from None


def read_waveform(source: Any, sample_rate: int | None) -> tuple[np.ndarray, int, str]:
    """``(mono signal, rate, name for messages)`` of an audio file, or of an array at ``sample_rate``."""
    if isinstance(source, (str, Path)):
        from ganpipe.audio import AudioError, read_audio

        try:
            signal, sr = read_audio(source)
        except AudioError as exc:
            raise SynthesisError(str(exc)) from None
        return signal, int(sr), str(source)
    if sample_rate is None:
        raise SynthesisError("a waveform given as an array needs its sample rate (sample_rate=)")
    return np.asarray(source, dtype=np.float32), int(sample_rate), "audio"


def conform_rate(signal: np.ndarray, sample_rate: int, model_rate: int, resample: bool,
                 name: str = "audio") -> tuple[np.ndarray, int]:
    """The sample-rate policy: audio at the model's rate as it is; at another rate refused, or
    resampled (soxr) when ``resample``."""
    if int(sample_rate) == int(model_rate):
        return signal, int(sample_rate)
    if not resample:
        raise SynthesisError(f"{name}: {sample_rate} Hz, but the model works at sample_rate={model_rate} Hz: add "
                             f"--resample (resample=True) to resample it to {model_rate} Hz (soxr)")
    from ganpipe.audio import resample as resample_audio

    return resample_audio(np.asarray(signal, dtype=np.float32), int(sample_rate), int(model_rate)), int(model_rate)


def too_short(length: int, need: int, unit: str, hop: int | None = None,
              sample_rate: int | None = None) -> str | None:
    """The minimum-length rule: why ``length`` ``unit`` (frames or samples) is less than the model's
    ``need``, or None. ``hop``/``sample_rate`` add the frames and milliseconds to a samples message."""
    if length >= need:
        return None
    ms = f" ({1000 * length / sample_rate:.1f} ms at {sample_rate} Hz)" if unit == "samples" and sample_rate else ""
    frames = f" ({need // hop} frames of {hop} samples)" if unit == "samples" and hop else ""
    return f"input too short: {length} {unit}{ms}, the model needs at least {need} {unit}{frames}"
