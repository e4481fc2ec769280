"""A trained model in a consumer's hands: :class:`Vocoder` (mel -> waveform, or copy-synthesis) and
:class:`UnconditionalGenerator` (latents, or clips + seed -> waveforms), loaded by :func:`load_model`
from a registered model (``models:/...``, ``runs:/...``, a model folder; its generator checked against
the registered hash) or from a generator file, served in this process by the same pyfunc and core.
The public API over it: :mod:`ganpipe.serving.api` (``ganpipe.synthesis``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.mel import MelConfig
from ganpipe.mel_kind import mel_range_warning
from ganpipe.model_uri import model_uri_problem
from ganpipe.serving.contract import (
    InputError,
    MelRangeWarning,
    SynthesisError,
    check_mel_config,
)
from ganpipe.serving.pyfunc import GanGeneratorModel, model_metadata
from ganpipe.serving.rules import conform_rate, too_short


@dataclass
class Vocoder:
    """A loaded vocoder (the pyfunc model of :mod:`ganpipe.serving.pyfunc`, registered or of a generator file)."""

    model: Any
    uri: str
    metadata: dict[str, Any]

    @property
    def mel_config(self) -> MelConfig:
        return MelConfig.from_dict(self.metadata["mel_config"])

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.metadata["hop_length"])

    @property
    def n_mels(self) -> int:
        return int(self.metadata["n_mels"])

    @property
    def min_samples(self) -> int:
        """The shortest waveform copy-synthesis accepts (the generator's fewest frames x hop)."""
        return int(self.metadata.get("min_frames", 1)) * self.hop_length

    def train_statistics(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The model's train-split per-bin mean and std of its un-normalised log-mel, when available."""
        try:
            core = self.model.unwrap_python_model().core
            return (np.asarray(core.mean, dtype=np.float64).ravel(), np.asarray(core.std, dtype=np.float64).ravel())
        except Exception:  # noqa: BLE001 - another pyfunc implementation: no statistics
            return None

    def mel_range_warning(self, mel: np.ndarray) -> str | None:
        """Why ``mel``'s value range clearly does not match this model's input mel (see
        :func:`mel_range_warning`), or ``None``."""
        stats = self.train_statistics()
        return mel_range_warning(mel, self.mel_config, *(stats or (None, None)))

    def check_mel_config(self, theirs: MelConfig | dict[str, Any] | str | Path) -> None:
        check_mel_config(theirs, self.mel_config)

    def _predict(self, x: np.ndarray, **params: Any) -> np.ndarray:
        from mlflow.exceptions import MlflowException

        try:
            return np.asarray(self.model.predict(np.ascontiguousarray(x, dtype=np.float32),
                                                 params={k: v for k, v in params.items() if v is not None}))
        except MlflowException as exc:
            raise SynthesisError(exc.message) from None

    def mel_to_audio(self, mel: np.ndarray, mel_config: MelConfig | dict[str, Any] | str | Path | None = None,
                     speaker: str | None = None, backend: str = "torch",
                     lengths: list[int] | None = None, warn_range: bool = True) -> np.ndarray:
        """``(n_mels, frames)`` -> ``(frames * hop,)``; ``(batch, n_mels, frames)`` -> ``(batch, frames * hop)``.

        ``mel``: the un-normalised project log-mel made with the model's mel configuration.
        ``lengths``: valid frames per item of a padded batch (outputs are zero beyond).
        A mel whose values clearly are of another kind (natural log vs log10, normalised) gives a
        :class:`MelRangeWarning` naming both (unless ``warn_range=False``)."""
        if mel_config is not None:
            self.check_mel_config(mel_config)
        mel = np.asarray(mel)
        if mel.ndim not in (2, 3):
            raise SynthesisError(f"mel must be (n_mels, frames) or (batch, n_mels, frames), got shape {mel.shape}")
        if mel.shape[-2] != self.n_mels:
            raise SynthesisError(
                f"mel has {mel.shape[-2]} bins (shape {mel.shape}, read as n_mels={mel.shape[-2]}) but the model "
                f"expects n_mels={self.n_mels}; its mel configuration: {self.mel_config.to_dict()}")
        if warn_range and (message := self.mel_range_warning(mel)):
            warnings.warn(message, MelRangeWarning, stacklevel=2)
        single = mel.ndim == 2
        out = self._predict(mel[None] if single else mel, input_type="mel", speaker=speaker, backend=backend,
                            lengths=list(lengths) if lengths else None)
        return out[0, 0] if single else out[:, 0]

    def copy_synthesis(self, wav: np.ndarray, sample_rate: int, speaker: str | None = None,
                       backend: str = "torch", resample: bool = False, name: str = "audio") -> np.ndarray:
        """Mono waveform -> the model's re-synthesis, ``(len // hop) * hop`` samples at the model's rate.
        Audio at another rate is refused unless ``resample`` (then resampled with soxr first);
        ``name``: how messages call the audio (e.g. its file)."""
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise SynthesisError(f"waveform must be mono (1-D), got shape {wav.shape}")
        wav, sample_rate = conform_rate(wav, sample_rate, self.sample_rate, resample, name)
        if message := too_short(len(wav), self.min_samples, "samples", self.hop_length, sample_rate):
            raise SynthesisError(f"{name}: {message}")
        return self._predict(wav[None, None], input_type="waveform", speaker=speaker, backend=backend)[0, 0]

    def compute_mel(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """The model's input mel of a mono waveform: ``(n_mels, len // hop)``, un-normalised."""
        import torch

        from ganpipe.mel import MelSpectrogram

        conform_rate(wav, sample_rate, self.sample_rate, resample=False)
        cfg = MelConfig.from_dict({**self.mel_config.to_dict(), "normalize": "none"})
        with torch.inference_mode():
            return MelSpectrogram(cfg)(torch.from_numpy(np.asarray(wav, dtype=np.float32))).numpy()


@dataclass
class UnconditionalGenerator:
    """A loaded unconditional generator (WaveGAN, SpecGAN; the pyfunc model of :mod:`ganpipe.serving.pyfunc`)."""

    model: Any
    uri: str
    metadata: dict[str, Any]

    @property
    def variant(self) -> str:
        return str(self.metadata["variant"])

    @property
    def sample_rate(self) -> int:
        return int(self.metadata["sample_rate"])

    @property
    def latent_dim(self) -> int:
        return int(self.metadata["latent_dim"])

    @property
    def samples(self) -> int:
        return int(self.metadata["samples"])

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.get("labels") or [])

    @property
    def max_clips(self) -> int:
        return int(self.metadata.get("max_clips", 256))

    def generate(self, n: int | None = None, seed: int = 0, latents: np.ndarray | None = None,
                 label: str | int | None = None, backend: str = "torch") -> np.ndarray:
        """``n`` clips drawn reproducibly from ``seed``, or one clip per row of ``latents``
        ``(batch, latent_dim)``: ``(batch, samples)`` float32 at :attr:`sample_rate`."""
        from mlflow.exceptions import MlflowException

        if (n is None) == (latents is None):
            raise SynthesisError("give exactly one of n= (number of clips, with seed=) or latents=")
        x = None if latents is None else np.ascontiguousarray(latents, dtype=np.float32)
        params = {"n": 0 if n is None else int(n), "seed": int(seed), "label": "" if label is None else str(label),
                  "backend": backend}
        try:
            out = np.asarray(self.model.predict(x, params=params))
        except MlflowException as exc:
            raise SynthesisError(exc.message) from None
        return out[:, 0]


def _load_pyfunc(model_uri: str, tracking_uri: str | None) -> tuple[Any, dict[str, Any]]:
    import mlflow
    from mlflow.exceptions import MlflowException

    from ganpipe.mlflow_store import resolve_tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_tracking_uri(tracking_uri)
    if uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as exc:
        raise SynthesisError(f"cannot load {model_uri}: {exc.message}") from None
    meta = dict(model.metadata.metadata or {})
    if not str(meta.get("format", "")).startswith(("ganpipe-vocoder/", "ganpipe-unconditional/")):
        raise SynthesisError(f"{model_uri} is not a ganpipe model (no ganpipe metadata)")
    _check_generator_hash(model, meta, model_uri)
    return model, meta


def _check_generator_hash(model: Any, meta: dict[str, Any], model_uri: str) -> None:
    """The generator inside the model is the one registered (metadata ``generator_sha256``)."""
    from ganpipe.mlflow_store import file_sha256

    try:
        path = model.unwrap_python_model().generator_path
    except AttributeError:  # another pyfunc implementation: nothing to check
        return
    expected = meta.get("generator_sha256")
    if expected and file_sha256(path) != expected:
        raise SynthesisError(f"{model_uri}: its generator file does not match the registered generator_sha256 "
                             f"{str(expected)[:12]}... (changed or corrupt artifact)")


class _GeneratorFileModel:
    """A ganpipe generator file (``models/generator.pt``, ``ganpipe import-model -o FILE``) served in
    this process the way its registered pyfunc model serves it: the same core, checks and errors."""

    def __init__(self, path: Path):
        from ganpipe.generator_io import load_generator
        from ganpipe.serving.cores import make_core

        try:
            loaded = load_generator(path)
        except (OSError, RuntimeError, ValueError, KeyError, AttributeError) as exc:
            raise SynthesisError(f"{path}: not a readable ganpipe generator file: {exc}") from None
        self._pyfunc = GanGeneratorModel()
        try:
            self._pyfunc.core = make_core(loaded)
        except InputError as exc:
            raise SynthesisError(f"{path}: {exc}") from None
        self.metadata = _file_metadata(loaded, self._pyfunc.core)

    def unwrap_python_model(self) -> Any:
        return self._pyfunc

    def predict(self, x: Any, params: dict[str, Any] | None = None) -> Any:
        return self._pyfunc.predict(None, x, params)


def _file_metadata(loaded: Any, core: Any) -> dict[str, Any]:
    return {**model_metadata(loaded, core), "training_step": loaded.meta.get("step"),
            "training_run_id": loaded.meta.get("run_id"), "source": loaded.meta.get("source")}


def load_model(model_uri: str, tracking_uri: str | None = None) -> Vocoder | UnconditionalGenerator:
    """Load a ganpipe model of either kind: a registered one (``models:/NAME@alias``,
    ``models:/NAME/3``, ``runs:/...`` or a local model folder) or a generator file
    (``models/generator.pt``, an imported published checkpoint)."""
    if problem := model_uri_problem(model_uri):
        raise SynthesisError(problem)  # a missing file, models:/NAME without an alias or a version
    if Path(model_uri).is_file():
        local = _GeneratorFileModel(Path(model_uri))
        model, meta = local, local.metadata
    else:
        model, meta = _load_pyfunc(model_uri, tracking_uri)
    if str(meta["format"]).startswith("ganpipe-unconditional/"):
        return UnconditionalGenerator(model, model_uri, meta)
    return Vocoder(model, model_uri, meta)


def model_summary(model: Vocoder | UnconditionalGenerator) -> str:
    """``'<uri> is a vocoder (hifigan_v3: mel -> waveform)'`` and the like, for error messages."""
    if isinstance(model, UnconditionalGenerator):
        return f"{model.uri} is an unconditional generator ({model.variant}: latents -> waveform)"
    return f"{model.uri} is a vocoder ({model.metadata.get('variant')}: mel -> waveform)"
