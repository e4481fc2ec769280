"""The registered model: an MLflow pyfunc around a ganpipe generator file (``models/generator.pt``).

``mlflow.pyfunc.load_model("models:/NAME@champion")`` (or ``mlflow models serve -m ...``) gives a
model whose ``predict(x, params=...)`` turns log-mels into waveforms.

Input / output contract (signature: input tensor float32 ``(-1, -1, -1)``, output float32
``(-1, 1, -1)``, params below):

* ``input_type="mel"`` (default): ``x`` is ``(batch, n_mels, frames)``, the *un-normalised* project
  log-mel (``ganpipe.mel.MelSpectrogram(config)`` of the waveform, as in ``data/features/mels``)
  computed with the model's mel configuration (metadata ``mel_config``). The model applies its own
  mean/variance normalisation when that configuration says ``normalize: meanvar``. Output:
  ``(batch, 1, frames * hop_length)``.
* ``input_type="waveform"`` (copy-synthesis): ``x`` is ``(batch, 1, samples)`` at the model's
  ``sample_rate``, float in [-1, 1]; the model computes the mel itself. Output:
  ``(batch, 1, (samples // hop_length) * hop_length)`` (the framing rule of ganpipe.mel).
* ``lengths`` (list of ints, optional): the valid frames (mel) or samples (waveform) of each batch
  item, for batches of different lengths padded to a common one. Each item is then synthesised
  alone on its valid part, and its output is zero beyond ``lengths[i] * hop`` (mel) or
  ``(lengths[i] // hop) * hop`` (waveform) samples.
* ``speaker`` (string): for speaker-conditioned models, a speaker name (metadata ``speakers``) or
  its index; must be empty for the others.
* ``backend``: ``torch`` (default) or ``onnx`` (ONNX Runtime on the ONNX export logged inside the
  model with ``registry.export_onnx: true``; same output to ~1e-4).

Bad input (wrong rank or number of mel bins, NaN/inf, too short, unknown speaker, bad params)
raises ``MlflowException(INVALID_PARAMETER_VALUE)`` with a message naming the problem; the REST
server answers it with HTTP 400.

REST (from the project root; ``--env-manager local`` uses this environment, no download)::

    MLFLOW_TRACKING_URI=sqlite:///.mlflow/mlflow.db \
        mlflow models serve -m models:/ganpipe-demo-hifigan_v3@champion --env-manager local -h 127.0.0.1 -p 5001
    curl -X POST http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \
        -d '{"inputs": [[[-4.1, ...], ...]], "params": {"input_type": "mel"}}'
    # -> {"predictions": [[[...]]]}  (batch, 1, samples); bad input -> HTTP 400 {"message": ...}

The model's metadata (``model.metadata.metadata``) holds: ``mel_config``, ``sample_rate``,
``hop_length``, ``n_mels``, ``variant``, ``speakers``, ``generator_sha256``, ``weights_sha256``, ``training_step``,
``training_run_id``, ``data_version`` (git commit + dvc.lock hashes of data/features and
data/prepared), ``eval_metrics`` (metrics/eval.json) and ``onnx`` (whether the export is inside).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.pyfunc import PythonModel

INPUT_TYPES = ("mel", "waveform")
BACKENDS = ("torch", "onnx")
FORMAT = "ganpipe-vocoder/1"


class InputError(ValueError):
    """A request the model cannot serve; the message says what is wrong."""


def model_signature() -> Any:
    """The pyfunc signature: variable batch, channels (n_mels or 1) and length; params above."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    params = ParamSchema([
        ParamSpec("input_type", "string", "mel"),
        ParamSpec("lengths", "long", [], shape=(-1,)),
        ParamSpec("speaker", "string", ""),
        ParamSpec("backend", "string", "torch"),
    ])
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1))]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1))]), params=params)


class VocoderCore:
    """The model's logic without MLflow: validation, normalisation, batching, backends."""

    def __init__(self, loaded: Any, onnx_path: str | Path | None = None):
        from ganpipe.inference import reference_module
        from ganpipe.mel import MelConfig, MelSpectrogram

        if loaded.bundle.kind != "vocoder":
            raise InputError(f"variant {loaded.bundle.variant} is not a vocoder (mel -> waveform)")
        self.loaded = loaded
        self.config: MelConfig = loaded.mel_config
        self.hop = int(self.config.hop_length)
        self.n_mels = int(self.config.n_mels)
        self.min_frames = int(loaded.bundle.min_frames or 1)
        self.module = reference_module(loaded.generator, "cpu")  # weight norm folded, eval, no grad
        self.mel = MelSpectrogram(MelConfig.from_dict({**self.config.to_dict(), "normalize": "none"}))
        self.normalize = self.config.normalize == "meanvar"
        self.mean = torch.as_tensor(loaded.mel_stats["mean"], dtype=torch.float32).view(-1, 1)
        self.std = torch.as_tensor(loaded.mel_stats["std"], dtype=torch.float32).clamp_min(1e-5).view(-1, 1)
        self.conditional = loaded.bundle.conditioning != "none"
        self.speakers = list(loaded.label_names) if self.conditional else []
        self.onnx_path = str(onnx_path) if onnx_path else None
        self._ort: Any = None

    # -- parameters -------------------------------------------------------------------------------
    def _speaker(self, speaker: Any) -> int | None:
        speaker = "" if speaker is None else str(speaker).strip()
        if not self.conditional:
            if speaker:
                raise InputError(f"this model is not speaker-conditioned; leave 'speaker' empty (got {speaker!r})")
            return None
        if not speaker:
            raise InputError(f"this model is speaker-conditioned: give params 'speaker', one of {self.speakers}")
        if speaker in self.speakers:
            return self.speakers.index(speaker)
        if speaker.isdigit() and int(speaker) < len(self.speakers):
            return int(speaker)
        raise InputError(f"unknown speaker {speaker!r}; this model knows {self.speakers} (or their index)")

    def _session(self) -> Any:
        if self._ort is None:
            if not self.onnx_path:
                raise InputError("backend 'onnx': this model version has no ONNX export "
                                 "(registered with registry.export_onnx: false); use backend 'torch'")
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3
            self._ort = ort.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])
        return self._ort

    # -- generation -------------------------------------------------------------------------------
    def _generate(self, mel: torch.Tensor, speaker: int | None, backend: str) -> np.ndarray:
        """Normalised-as-needed mel ``(B, n_mels, F)`` -> ``(B, 1, F * hop)`` float32."""
        if self.normalize:
            mel = (mel - self.mean) / self.std
        spk = None if speaker is None else torch.full((mel.shape[0],), speaker, dtype=torch.long)
        if backend == "onnx":
            feeds = {"mel": np.ascontiguousarray(mel.numpy(), dtype=np.float32)}
            if spk is not None:
                feeds["speaker"] = spk.numpy()
            return np.asarray(self._session().run(["wav"], feeds)[0], dtype=np.float32)
        with torch.inference_mode():
            out = self.module(mel, **({} if spk is None else {"speaker": spk}))
        return out.float().cpu().numpy()

    def _mel_of(self, wav: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self.mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))

    def predict(self, x: Any, input_type: str = "mel", lengths: Any = None, speaker: Any = "",
                backend: str = "torch") -> np.ndarray:
        if input_type not in INPUT_TYPES:
            raise InputError(f"params 'input_type' must be one of {list(INPUT_TYPES)}, got {input_type!r}")
        if backend not in BACKENDS:
            raise InputError(f"params 'backend' must be one of {list(BACKENDS)}, got {backend!r}")
        try:
            x = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"input is not a numeric array: {exc}") from None
        expected = "(batch, n_mels, frames)" if input_type == "mel" else "(batch, 1, samples)"
        if x.ndim != 3:
            raise InputError(f"input_type={input_type}: input must be a 3-D array {expected}, got shape {x.shape}")
        batch, channels, length = x.shape
        if batch < 1 or length < 1:
            raise InputError(f"input is empty: shape {x.shape}")
        if input_type == "mel" and channels != self.n_mels:
            raise InputError(
                f"mel has {channels} bins but the model expects n_mels={self.n_mels} (shape {expected}); "
                f"compute mels with the model's mel configuration {self.config.to_dict()}")
        if input_type == "waveform" and channels != 1:
            raise InputError(f"input_type=waveform: input must be {expected} (mono), got shape {x.shape}")
        if not np.isfinite(x).all():
            raise InputError("input contains NaN or infinite values")
        lens = [int(v) for v in (lengths if lengths is not None else [])]
        if lens and len(lens) != batch:
            raise InputError(f"params 'lengths' has {len(lens)} values for a batch of {batch}")
        if any(not 1 <= v <= length for v in lens):
            raise InputError(f"params 'lengths' must lie in [1, {length}], got {lens}")
        spk = self._speaker(speaker)
        unit, need = ("frames", self.min_frames) if input_type == "mel" else ("samples", self.min_frames * self.hop)
        shortest = min(lens) if lens else length
        if shortest < need:
            raise InputError(f"input too short: {shortest} {unit}, the model needs at least {need} {unit}")

        if input_type == "mel":
            if not lens:
                return self._generate(torch.from_numpy(x), spk, backend)
            items = [torch.from_numpy(x[i:i + 1, :, :n]) for i, n in enumerate(lens)]
        else:
            valid = lens or [length] * batch
            items = [self._mel_of(x[i, 0, :n]).unsqueeze(0) for i, n in enumerate(valid)]
            if not lens:  # same length: one batched call
                return self._generate(torch.cat(items), spk, backend)
        outs = [self._generate(m, spk, backend) for m in items]
        total = max(o.shape[-1] for o in outs)
        result = np.zeros((batch, 1, total), dtype=np.float32)
        for i, o in enumerate(outs):
            result[i, :, : o.shape[-1]] = o[0]
        return result


class GanVocoderModel(PythonModel):
    """MLflow pyfunc: artifacts ``generator`` (ganpipe generator file) and optional ``onnx``."""

    # The signature is explicit (type hints cannot express the 3-D tensor and the params); this
    # tells MLflow not to look for type hints on predict() (and not to warn about their absence).
    _skip_type_hint_validation = True

    def load_context(self, context):  # noqa: ANN001 - no annotations: MLflow would read them as a signature
        from ganpipe.generator_io import load_generator

        artifacts = context.artifacts
        self.core = VocoderCore(load_generator(artifacts["generator"]), artifacts.get("onnx"))

    def predict(self, context, model_input, params=None):  # noqa: ANN001 - see load_context
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        params = dict(params or {})
        if hasattr(model_input, "to_numpy"):  # a DataFrame from a client that ignored the signature
            model_input = model_input.to_numpy()
        try:
            return self.core.predict(model_input, input_type=params.get("input_type", "mel"),
                                     lengths=params.get("lengths"), speaker=params.get("speaker", ""),
                                     backend=params.get("backend", "torch"))
        except InputError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


# The file MLflow runs to build the model at load time ("models from code": no pickled objects).
LOADER_SOURCE = '''"""ganpipe vocoder: MLflow models-from-code entry point (see ganpipe/serving.py)."""
import mlflow

from ganpipe.serving import GanVocoderModel

mlflow.models.set_model(GanVocoderModel())
'''
