"""The contract of a registered model, without torch or MLflow: its formats, the request vocabulary
(input types, the backends a served model answers to, the clip limit), the errors, and the mel
contract (a consumer's mel parameters against the model's; a mel whose values are of another kind).

The lowest module of :mod:`ganpipe.serving`: every other module of the package may use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganpipe.mel import MelConfig

FORMAT = "ganpipe-vocoder/1"  # metadata "format" of a vocoder
UNCONDITIONAL_FORMAT = "ganpipe-unconditional/1"  # ... of an unconditional generator
FORMATS = {"vocoder": FORMAT, "unconditional": UNCONDITIONAL_FORMAT}
INPUT_TYPES = ("mel", "waveform")  # a served vocoder's params "input_type"
MAX_CLIPS = 256  # clips per request of an unconditional model
ONNX_BACKEND = "onnxruntime"  # the ONNX Runtime backend's name everywhere (served models also accept "onnx")
LOWPREC_BACKENDS = ("onnx-int8", "bf16")  # ganpipe/lowprec/: int8 ONNX Runtime and bf16 torch (vocoders, CPU)
SERVED_BACKENDS = ("torch", ONNX_BACKEND, *LOWPREC_BACKENDS)  # params "backend" of a registered model
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


