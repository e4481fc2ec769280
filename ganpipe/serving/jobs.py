"""What a served request asks of the model, without HTTP: the mel contract checks of ``ganpipe
synthesize`` (the same messages), whole answers through the model's own path, and the blocks of a
streamed answer (:mod:`ganpipe.serving.streaming`)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ganpipe.serving.contract import SynthesisError
from ganpipe.serving.cores import name_or_index
from ganpipe.serving.registry_follower import ServedModel
from ganpipe.serving.rules import conform_rate, too_short
from ganpipe.serving.streaming import core_runner, plan_blocks, stream_blocks


@dataclass(frozen=True)
class VocodeJob:
    served: ServedModel
    mel: np.ndarray  # (n_mels, frames), checked
    speaker: str | None
    backend: str
    warning: str | None  # a mel of another kind than the model's (MelRangeWarning's message)

    @property
    def samples(self) -> int:
        return self.mel.shape[1] * self.served.vocoder.hop_length  # type: ignore[union-attr]

    @property
    def seconds(self) -> float:
        return self.samples / self.served.vocoder.sample_rate  # type: ignore[union-attr]


def vocoder_of(served: ServedModel) -> Any:
    if served.vocoder is None:
        raise SynthesisError(f"{served.uri} (version {served.version}) is an unconditional generator: "
                             "POST /v1/generate with n, seed, label")
    return served.vocoder


def mel_job(served: ServedModel, mel: np.ndarray, mel_config: Any, speaker: str | None, backend: str) -> VocodeJob:
    """The checks of :meth:`Vocoder.mel_to_audio` on the whole mel, before any audio is made."""
    voc = vocoder_of(served)
    if mel_config is not None:
        voc.check_mel_config(mel_config)  # MelConfigMismatch naming each parameter
    mel = np.asarray(mel)
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2:
        raise SynthesisError(f"mel must be (n_mels, frames), got shape {mel.shape}")
    if mel.shape[0] != voc.n_mels:
        raise SynthesisError(f"mel has {mel.shape[0]} bins (shape {mel.shape}, read as n_mels={mel.shape[0]}) but "
                             f"the model expects n_mels={voc.n_mels}; its mel configuration: "
                             f"{voc.mel_config.to_dict()}")
    mel = mel.astype(np.float32, copy=False)
    if not np.isfinite(mel).all():
        raise SynthesisError("mel contains NaN or infinite values")
    if message := too_short(mel.shape[1], int(voc.metadata.get("min_frames", 1)), "frames"):
        raise SynthesisError(message)
    speaker_index(served, speaker)
    return VocodeJob(served, mel, speaker, backend, voc.mel_range_warning(mel))


def wav_job(served: ServedModel, signal: np.ndarray, rate: int, resample: bool, speaker: str | None,
            backend: str) -> VocodeJob:
    """Copy-synthesis: the sample-rate policy and minimum length of ``ganpipe synthesize --wav``, then
    the model's own mel of the audio."""
    voc = vocoder_of(served)
    signal, rate = conform_rate(signal, rate, voc.sample_rate, resample, "audio")
    if message := too_short(len(signal), voc.min_samples, "samples", voc.hop_length, rate):
        raise SynthesisError(f"audio: {message}")
    speaker_index(served, speaker)
    return VocodeJob(served, voc.compute_mel(signal, rate), speaker, backend, None)


def speaker_index(served: ServedModel, speaker: str | None) -> int | None:
    core = served.core
    try:
        return name_or_index(speaker, core.speakers if core.conditional else None, "speaker", "speaker", required=True)
    except ValueError as exc:
        raise SynthesisError(str(exc)) from None


def whole(job: VocodeJob) -> np.ndarray:
    """The whole utterance, the model's own path (the one ``ganpipe synthesize`` takes)."""
    return job.served.vocoder.mel_to_audio(job.mel, speaker=job.speaker, backend=job.backend,  # type: ignore
                                           warn_range=False)


def streamable(job: VocodeJob) -> bool:
    return job.served.field is not None


def blocks(job: VocodeJob, first: int, size: int, seed: int = 0) -> Iterator[np.ndarray]:
    """The stitched blocks of the answer (their concatenation equals :func:`whole`)."""
    core = job.served.core
    frames = job.mel.shape[1]
    plan = plan_blocks(frames, job.served.field, first, size, int(core.min_frames))  # type: ignore[arg-type]
    runner = core_runner(core, frames, speaker_index(job.served, job.speaker), job.backend, seed)
    return stream_blocks(job.mel, core.hop, plan, runner)


def generate(served: ServedModel, n: Any, seed: Any, label: Any, backend: str) -> np.ndarray:
    """Clips of an unconditional model as ``(samples, clips)`` (one WAV channel per clip)."""
    if served.vocoder is not None:
        raise SynthesisError(f"{served.uri} (version {served.version}) is a vocoder: POST /v1/vocode (a mel) or "
                             "/v1/copy-synthesis (a WAV)")
    try:
        n, seed = int(n if n is not None else 1), int(seed or 0)
    except (TypeError, ValueError):
        raise SynthesisError(f"n and seed must be integers, got n={n!r}, seed={seed!r}") from None
    clips = served.model.generate(n=n, seed=seed, label=label, backend=backend)  # type: ignore[union-attr]
    return np.ascontiguousarray(clips.T)
