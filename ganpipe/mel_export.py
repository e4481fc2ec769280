"""``ganpipe mel``: WAV file(s) -> exactly the ``.npy`` mel that ``ganpipe synthesize --mel`` and the
REST endpoint expect from a given model (or a mel preset).

The array is ``(n_mels, frames)`` float32, the un-normalised log-mel of the model's own configuration
(:meth:`ganpipe.synthesis.Vocoder.compute_mel`: log base, clamp, filterbank, framing; a ``meanvar``
model normalises it itself), so ``ganpipe mel --model M in.wav -o x.npy`` then ``ganpipe synthesize
--model M --mel x.npy`` gives the same audio as ``ganpipe synthesize --model M --wav in.wav``.
``--preset NAME`` (``hifigan``, ``pwg``) or ``--preset params`` (params.yaml's mel, ``from_model``
resolved) computes a preset's mel instead, for a model that is not at hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganpipe.mel import MelConfig


class MelExportError(ValueError):
    """Input ``ganpipe mel`` cannot turn into a mel (the message names the file or option)."""


@dataclass(frozen=True)
class MelSource:
    """Where the mel's definition comes from, and how to compute it."""

    config: MelConfig
    describe: str
    vocoder: object | None = None  # a ganpipe.synthesis.Vocoder: its compute_mel

    def compute(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        if self.vocoder is not None:
            return np.asarray(self.vocoder.compute_mel(wav, sample_rate), dtype=np.float32)
        import torch

        from ganpipe.mel import MelSpectrogram

        cfg = MelConfig.from_dict({**self.config.to_dict(), "normalize": "none"})
        with torch.inference_mode():
            return MelSpectrogram(cfg)(torch.from_numpy(np.asarray(wav, dtype=np.float32))).numpy()


def source_of(model: str | None, preset: str | None, params: str | Path = "params.yaml",
              tracking_uri: str | None = None) -> MelSource:
    """The mel of ``model`` (a generator file, ``models:/...``, a model folder) or of ``preset``."""
    if (model is None) == (preset is None):
        raise MelExportError("give exactly one of --model (the mel that model takes) or --preset")
    if model is not None:
        from ganpipe.synthesis import SynthesisError, load_vocoder

        try:
            voc = load_vocoder(model, tracking_uri)
        except SynthesisError as exc:
            raise MelExportError(str(exc)) from None
        return MelSource(voc.mel_config, f"the mel of {model}", voc)
    from ganpipe.config import MEL_PRESETS, ConfigError, load_params

    if preset == "params":
        from ganpipe.training.starting_model import resolve_feature_mel

        try:
            cfg = resolve_feature_mel(load_params(params)).config
        except (ConfigError, OSError, ValueError) as exc:
            raise MelExportError(f"--preset params: {exc}") from None
        return MelSource(cfg, f"the mel of {params}")
    if preset not in MEL_PRESETS:
        raise MelExportError(f"unknown --preset {preset!r}; allowed: {', '.join([*MEL_PRESETS, 'params'])}")
    try:
        sample_rate = load_params(params).audio.sample_rate
    except (ConfigError, OSError):
        sample_rate = MelConfig().sample_rate
    return MelSource(MelConfig(sample_rate=sample_rate, **MEL_PRESETS[preset]), f"the {preset} preset's mel")


def outputs(wavs: list[Path], out: Path) -> list[Path]:
    """One WAV: ``out`` (a ``.npy`` file, or a folder); several: ``out/<stem>.npy`` (``out`` a folder)."""
    if len(wavs) == 1 and out.suffix.lower() == ".npy":
        return [out]
    if out.suffix.lower() == ".npy":
        raise MelExportError(f"{len(wavs)} WAV files: -o must be a folder (each becomes <name>.npy), not {out}")
    stems = [w.stem for w in wavs]
    if len(set(stems)) != len(stems):
        raise MelExportError("two WAV files have the same name; their .npy files would overwrite each other")
    return [out / f"{s}.npy" for s in stems]


def export(wavs: list[Path], out: Path, source: MelSource, resample: bool = False) -> list[dict]:
    """Compute and write each WAV's mel; -> one summary per file."""
    from ganpipe.atomic import atomic_path
    from ganpipe.audio import AudioError, read_audio
    from ganpipe.audio import resample as resample_audio

    sr_model = source.config.sample_rate
    done = []
    for wav_path, npy in zip(wavs, outputs(wavs, out)):
        try:
            wav, sr = read_audio(wav_path)
        except AudioError as exc:
            raise MelExportError(str(exc)) from None
        if sr != sr_model:
            if not resample:
                raise MelExportError(f"{wav_path}: {sr} Hz, but {source.describe} is at {sr_model} Hz: add "
                                     f"--resample to resample it (soxr)")
            wav = resample_audio(wav, sr, sr_model)
        mel = np.ascontiguousarray(source.compute(wav, sr_model), dtype=np.float32)
        npy.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(npy) as tmp:
            np.save(tmp, mel)
        done.append({"wav": str(wav_path), "out": str(npy), "shape": list(mel.shape)})
    return done
