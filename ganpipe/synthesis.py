"""Using a registered model: a vocoder (mel -> waveform, or waveform -> waveform: copy-synthesis) or
an unconditional generator (latents, or a number of clips + a seed -> waveforms).

>>> from ganpipe.synthesis import load_vocoder
>>> voc = load_vocoder("models:/ganpipe-demo-hifigan_v3@champion")   # tracking store: see below
>>> wav = voc.mel_to_audio(mel)                       # (n_mels, frames) -> (frames * hop,)
>>> wav = voc.mel_to_audio(mel, mel_config=my_cfg)    # MelConfigMismatch if my_cfg differs
>>> out = voc.copy_synthesis(wav, sample_rate=22050)
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

:func:`load_model` gives either kind (from the model's metadata); :func:`load_vocoder` and
:func:`load_unconditional` refuse the other kind with a :class:`SynthesisError` that says so.

Tracking store of ``models:/`` URIs: ``tracking_uri`` if given, else ``$MLFLOW_TRACKING_URI``, else
the ``tracking.tracking_uri`` of ``./params.yaml`` (the project's sqlite database).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.mel import MelConfig


class SynthesisError(ValueError):
    """Input the model cannot turn into audio (the message says why)."""


class MelRangeWarning(UserWarning):
    """A mel whose values clearly do not look like the model's input mel (natural log vs log10,
    normalised vs not): the audio would be wrong."""


class MelConfigMismatch(SynthesisError):
    """The consumer's mel parameters differ from the model's; ``differences``: name -> (yours, model's)."""

    def __init__(self, differences: dict[str, tuple[Any, Any]], model_config: MelConfig):
        self.differences = differences
        self.model_config = model_config
        lines = [f"{k}: yours {a!r}, model {b!r}" for k, (a, b) in differences.items()]
        super().__init__("mel parameters do not match the model's ("
                         + ", ".join(differences) + "):\n  " + "\n  ".join(lines)
                         + "\ncompute the mels with the model's configuration (Vocoder.mel_config / "
                         "Vocoder.compute_mel) or use --wav for copy-synthesis")


def as_mel_config(source: MelConfig | dict[str, Any] | str | Path) -> MelConfig:
    """A MelConfig from itself, a dict, or a JSON file (e.g. data/features/mel_config.json)."""
    if isinstance(source, MelConfig):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise SynthesisError(f"mel configuration file not found: {path}")
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise SynthesisError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(source, dict):
        raise SynthesisError("a mel configuration must be a JSON object of MelConfig fields")
    try:
        return MelConfig.from_dict(source)
    except (TypeError, ValueError) as exc:
        raise SynthesisError(f"invalid mel configuration: {exc}") from None


_LN10 = float(np.log(10.0))


def _describe_mel(log_base: str, normalised: bool = False) -> str:
    if normalised:
        return "a mean/variance-normalised mel"
    return "a natural-log mel" if log_base == "e" else "a log10 mel"


def mel_range_warning(mel: np.ndarray, config: MelConfig, train_mean: np.ndarray | None = None,
                      train_std: np.ndarray | None = None) -> str | None:
    """Why ``mel``'s values clearly do not look like the model's input, or ``None``.

    The model takes the un-normalised log-mel of its configuration (``log_base``, floor
    ``log(clamp)``; a ``meanvar`` model normalises it itself). Two signs of another kind of mel:
    values below that floor (impossible for the model's own mel), or a level (mean) far from the
    model's train-split mean and close to where a natural-log, log10 or normalised version of it
    would be. ``train_mean``/``train_std``: the model's per-bin statistics (un-normalised log-mel).
    """
    mel = np.asarray(mel, dtype=np.float64)
    finite = mel[np.isfinite(mel)]
    if finite.size == 0:
        return None
    base = config.log_base
    floor = float(np.log(config.clamp)) / (1.0 if base == "e" else _LN10)
    expects = (f"the model expects {_describe_mel(base)} (log_base {base}, floor log(clamp={config.clamp:g}) = "
               f"{floor:.2f}" + (", un-normalised: it applies its own mean/variance normalisation"
                                 if config.normalize == "meanvar" else "") + ")")
    level, low, high = float(finite.mean()), float(finite.min()), float(finite.max())
    seen = f"values mean {level:.2f}, range {low:.2f} .. {high:.2f}"
    hint = "; compute it with the model's mel (Vocoder.compute_mel / mel_config) or give --wav"
    if low < floor - max(0.05 * abs(floor), 0.1):
        other = "e" if base == "10" else "10"
        other_floor = float(np.log(config.clamp)) / (1.0 if other == "e" else _LN10)
        guess = f" ({_describe_mel(other)}?)" if low >= other_floor - 0.5 else ""
        return f"the mel's values go below the floor of the model's mel{guess}: {seen}, but {expects}{hint}"
    if train_mean is None or train_std is None:
        return None
    mu = float(np.mean(train_mean))
    sigma = float(np.mean(train_std))
    if not np.isfinite(mu) or not np.isfinite(sigma) or sigma <= 0 or (abs(mu) < 1e-6 and abs(sigma - 1) < 1e-6):
        return None  # no real statistics (placeholder zeros/ones)
    other = "e" if base == "10" else "10"
    candidates = {_describe_mel(other): mu * (_LN10 if other == "e" else 1 / _LN10),
                  _describe_mel(base, normalised=True): 0.0}
    own = abs(level - mu)
    name, centre = min(candidates.items(), key=lambda kv: abs(level - kv[1]))
    if own > sigma and abs(level - centre) < own / 3:
        return (f"the mel looks like {name}: {seen}, but {expects}, train-split mean {mu:.2f}" + hint)
    return None


@dataclass
class Vocoder:
    """A loaded registered vocoder (an MLflow pyfunc model of ganpipe.serving)."""

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
        from ganpipe.mel_kind import mel_range_warning as kind_warning  # every model, imported ones too

        return kind_warning(mel, self.mel_config, *(stats or (None, None)))

    def check_mel_config(self, theirs: MelConfig | dict[str, Any] | str | Path) -> None:
        diff = as_mel_config(theirs).diff(self.mel_config)
        if diff:
            raise MelConfigMismatch(diff, self.mel_config)

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
                       backend: str = "torch") -> np.ndarray:
        """Mono waveform at the model's rate -> the model's re-synthesis, ``(len // hop) * hop`` samples."""
        if int(sample_rate) != self.sample_rate:
            raise SynthesisError(f"audio is {sample_rate} Hz but the model works at sample_rate={self.sample_rate} "
                                 "Hz; resample it first (e.g. ganpipe.audio.resample)")
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim != 1:
            raise SynthesisError(f"waveform must be mono (1-D), got shape {wav.shape}")
        return self._predict(wav[None, None], input_type="waveform", speaker=speaker, backend=backend)[0, 0]

    def compute_mel(self, wav: np.ndarray, sample_rate: int) -> np.ndarray:
        """The model's input mel of a mono waveform: ``(n_mels, len // hop)``, un-normalised."""
        import torch

        from ganpipe.mel import MelSpectrogram

        if int(sample_rate) != self.sample_rate:
            raise SynthesisError(f"audio is {sample_rate} Hz but the model works at sample_rate={self.sample_rate} Hz")
        cfg = MelConfig.from_dict({**self.mel_config.to_dict(), "normalize": "none"})
        with torch.inference_mode():
            return MelSpectrogram(cfg)(torch.from_numpy(np.asarray(wav, dtype=np.float32))).numpy()


@dataclass
class UnconditionalGenerator:
    """A loaded registered unconditional generator (WaveGAN, SpecGAN; ganpipe.serving)."""

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
    return model, meta


class _GeneratorFileModel:
    """A ganpipe generator file (``models/generator.pt``, ``ganpipe import-model -o FILE``) served in
    this process the way its registered pyfunc model serves it: the same core, checks and errors."""

    def __init__(self, path: Path):
        from ganpipe.generator_io import load_generator
        from ganpipe.serving import GanGeneratorModel, InputError, make_core

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
    from ganpipe.packaging import model_metadata

    return {**model_metadata(loaded, core), "training_step": loaded.meta.get("step"),
            "training_run_id": loaded.meta.get("run_id"), "source": loaded.meta.get("source")}


def load_model(model_uri: str, tracking_uri: str | None = None) -> Vocoder | UnconditionalGenerator:
    """Load a ganpipe model of either kind: a registered one (``models:/NAME@alias``,
    ``models:/NAME/3``, ``runs:/...`` or a local model folder) or a generator file
    (``models/generator.pt``, an imported published checkpoint)."""
    from ganpipe.model_uri import model_uri_problem

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


def describe(model: Vocoder | UnconditionalGenerator) -> str:
    """``'<uri> is a vocoder (hifigan_v3: mel -> waveform)'`` and the like, for error messages."""
    if isinstance(model, UnconditionalGenerator):
        return f"{model.uri} is an unconditional generator ({model.variant}: latents -> waveform)"
    return f"{model.uri} is a vocoder ({model.metadata.get('variant')}: mel -> waveform)"


def load_vocoder(model_uri: str, tracking_uri: str | None = None) -> Vocoder:
    """Load a registered ganpipe vocoder; an unconditional model raises :class:`SynthesisError`."""
    model = load_model(model_uri, tracking_uri)
    if not isinstance(model, Vocoder):
        raise SynthesisError(f"{describe(model)}, not a vocoder: generate with load_unconditional(...).generate(n=, "
                             "seed=) (ganpipe synthesize --n N --seed S)")
    return model


def load_unconditional(model_uri: str, tracking_uri: str | None = None) -> UnconditionalGenerator:
    """Load a registered unconditional generator; a vocoder raises :class:`SynthesisError`."""
    model = load_model(model_uri, tracking_uri)
    if not isinstance(model, UnconditionalGenerator):
        raise SynthesisError(f"{describe(model)}, not an unconditional generator: give it mels "
                             "(load_vocoder(...).mel_to_audio; ganpipe synthesize --mel/--wav)")
    return model


def synthesize(model_uri: str, *, mel: np.ndarray | None = None, wav: np.ndarray | None = None,
               sample_rate: int | None = None, mel_config: MelConfig | dict[str, Any] | str | Path | None = None,
               speaker: str | None = None, backend: str = "torch",
               tracking_uri: str | None = None) -> tuple[np.ndarray, int]:
    """One call: ``(waveform, sample_rate)`` from ``mel`` (vocoding) or ``wav`` + ``sample_rate``
    (copy-synthesis) with the registered model ``model_uri``."""
    if (mel is None) == (wav is None):
        raise SynthesisError("give exactly one of mel= or wav=")
    voc = load_vocoder(model_uri, tracking_uri)
    if mel is not None:
        return voc.mel_to_audio(mel, mel_config=mel_config, speaker=speaker, backend=backend), voc.sample_rate
    if sample_rate is None:
        raise SynthesisError("wav= needs sample_rate=")
    if mel_config is not None:
        raise SynthesisError("mel_config= describes given mels; with wav= the model computes its own mel")
    return voc.copy_synthesis(wav, sample_rate, speaker=speaker, backend=backend), voc.sample_rate


def generate(model_uri: str, *, n: int | None = None, seed: int = 0, latents: np.ndarray | None = None,
             label: str | int | None = None, backend: str = "torch",
             tracking_uri: str | None = None) -> tuple[np.ndarray, int]:
    """One call: ``(clips (batch, samples), sample_rate)`` from the registered unconditional model
    ``model_uri``: ``n`` clips from ``seed``, or one per row of ``latents``."""
    gen = load_unconditional(model_uri, tracking_uri)
    return gen.generate(n=n, seed=seed, latents=latents, label=label, backend=backend), gen.sample_rate
