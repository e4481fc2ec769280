"""The contract of a registered model, without torch or MLflow: its formats, the request vocabulary
(input types, the backends a served model answers to, the clip limit), the errors, and the mel
contract (a consumer's mel parameters against the model's; a mel whose values are of another kind).

The lowest module of :mod:`ganpipe.serving`: every other module of the package may use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.mel import MelConfig

FORMAT = "ganpipe-vocoder/1"  # metadata "format" of a vocoder
UNCONDITIONAL_FORMAT = "ganpipe-unconditional/1"  # ... of an unconditional generator
FORMATS = {"vocoder": FORMAT, "unconditional": UNCONDITIONAL_FORMAT}
INPUT_TYPES = ("mel", "waveform")  # a served vocoder's params "input_type"
MAX_CLIPS = 256  # clips per request of an unconditional model
ONNX_BACKEND = "onnxruntime"  # the ONNX Runtime backend's name everywhere (served models also accept "onnx")
SERVED_BACKENDS = ("torch", ONNX_BACKEND)  # params "backend" of a registered model
_BACKEND_ALIASES = {"onnx": ONNX_BACKEND}  # the name served models answered to first


class InputError(ValueError):
    """A request the served model cannot answer; the message says what is wrong."""


class SynthesisError(ValueError):
    """Input the model cannot turn into audio (the message says why): the Python API's and the CLI's error."""


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


def served_backend(backend: Any) -> str:
    """``backend`` as one of :data:`SERVED_BACKENDS` (``onnx`` is ``onnxruntime``); :class:`InputError` otherwise."""
    backend = _BACKEND_ALIASES.get(str(backend), str(backend))
    if backend not in SERVED_BACKENDS:
        raise InputError(f"params 'backend' must be one of {list(SERVED_BACKENDS)}, got {backend!r}")
    return backend


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


def check_mel_config(theirs: MelConfig | dict[str, Any] | str | Path, model_config: MelConfig) -> None:
    """:class:`MelConfigMismatch` naming each parameter of ``theirs`` that differs from the model's."""
    diff = as_mel_config(theirs).diff(model_config)
    if diff:
        raise MelConfigMismatch(diff, model_config)


_LN10 = float(np.log(10.0))


def _mel_kind(log_base: str, normalised: bool = False) -> str:
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
    expects = (f"the model expects {_mel_kind(base)} (log_base {base}, floor log(clamp={config.clamp:g}) = "
               f"{floor:.2f}" + (", un-normalised: it applies its own mean/variance normalisation"
                                 if config.normalize == "meanvar" else "") + ")")
    level, low, high = float(finite.mean()), float(finite.min()), float(finite.max())
    seen = f"values mean {level:.2f}, range {low:.2f} .. {high:.2f}"
    hint = "; compute it with the model's mel (Vocoder.compute_mel / mel_config) or give --wav"
    if low < floor - max(0.05 * abs(floor), 0.1):
        other = "e" if base == "10" else "10"
        other_floor = float(np.log(config.clamp)) / (1.0 if other == "e" else _LN10)
        guess = f" ({_mel_kind(other)}?)" if low >= other_floor - 0.5 else ""
        return f"the mel's values go below the floor of the model's mel{guess}: {seen}, but {expects}{hint}"
    if train_mean is None or train_std is None:
        return None
    mu = float(np.mean(train_mean))
    sigma = float(np.mean(train_std))
    if not np.isfinite(mu) or not np.isfinite(sigma) or sigma <= 0 or (abs(mu) < 1e-6 and abs(sigma - 1) < 1e-6):
        return None  # no real statistics (placeholder zeros/ones)
    other = "e" if base == "10" else "10"
    candidates = {_mel_kind(other): mu * (_LN10 if other == "e" else 1 / _LN10),
                  _mel_kind(base, normalised=True): 0.0}
    own = abs(level - mu)
    name, centre = min(candidates.items(), key=lambda kv: abs(level - kv[1]))
    if own > sigma and abs(level - centre) < own / 3:
        return (f"the mel looks like {name}: {seen}, but {expects}, train-split mean {mu:.2f}" + hint)
    return None
