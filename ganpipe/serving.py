"""The registered model: an MLflow pyfunc around a ganpipe generator file (``models/generator.pt``).

``mlflow.pyfunc.load_model("models:/NAME@champion")`` (or ``mlflow models serve -m ...``) gives a
model whose ``predict(x, params=...)`` returns waveforms. One pyfunc class (:class:`GanGeneratorModel`)
serves both kinds of generator; it reads ``kind`` from the generator file and hands the request to
:class:`VocoderCore` (mel -> waveform) or :class:`UnconditionalCore` (latent -> waveform). The
model's metadata says which (``kind``, and ``format``: ``ganpipe-vocoder/1`` or
``ganpipe-unconditional/1``).

Vocoders (``hifigan_*``, ``melgan``, ``multiband_melgan``, ``parallel_wavegan``). Signature: input
tensor float32 ``(-1, -1, -1)``, output float32 ``(-1, 1, -1)``, params below.

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
* ``backend``: ``torch`` (default) or ``onnxruntime`` (alias ``onnx``; ONNX Runtime on the ONNX export logged inside the
  model with ``registry.export_onnx: true``; same output to ~1e-4); low precision (ganpipe/lowprec/):
  ``onnx-int8`` (the int8 export logged with ``registry.export_int8: true``) and ``bf16`` (torch, bf16
  autocast); on a CPU without the instructions they fall back to fp32 with one warning.

Unconditional generators (``wavegan``, ``specgan``). Signature: no input schema (``x`` is
optional), output float32 ``(-1, 1, -1)``, params ``n``, ``seed``, ``label``, ``backend``. Either

* ``x`` = float32 latent vectors ``(batch, latent_dim)`` (metadata ``latent_dim``; the generators
  were trained on the distribution in metadata ``latent_distribution``), 1 <= batch <= 256, with
  ``n`` left at 0 (``seed`` is then unused); or
* no ``x`` (``None``, or an empty array: REST ``"inputs": []``) and params ``n`` (1..256, the number
  of clips) and ``seed`` (int >= 0, default 0): the latents are drawn with the generator's own
  ``sample_latent`` under ``torch.manual_seed(seed)`` (the process's random state is left as it
  was), so the same ``n`` and ``seed`` give the same audio.

``label`` (string): for class-conditioned models (metadata ``labels``), a class name or its index,
used for every clip; left empty, the clips cycle through the classes (clip i gets class
``i % len(labels)``, as in the evaluation). Must be empty for unconditioned models. Output:
``(batch, 1, samples)`` float32 at the model's ``sample_rate`` (metadata ``samples``: 16384, about
1 s at 16 kHz). WaveGAN's output is the waveform itself; SpecGAN's is the Griffin-Lim audio of its
generated spectrogram (``generator.spectrogram.to_audio``, the path the evaluation uses).
``backend``: ``torch`` (default) or ``onnxruntime`` / ``onnx`` (WaveGAN only: its ONNX export, inputs ``z`` [+ int64
``labels``], output ``wav``; SpecGAN's Griffin-Lim rendering is not exported). ``mel_mlp_gan``
(single normalised mel frames, no waveform; the evaluation does not score it either) is not
served: building its model raises :class:`InputError`, and the registry refuses it.

Bad input (wrong rank or number of mel bins / latent size, NaN/inf, too short, ``n`` out of
range, both or neither of ``x`` and ``n``, unknown speaker or label, bad params) raises
``MlflowException(INVALID_PARAMETER_VALUE)`` with a message naming the problem; the REST server
answers it with HTTP 400.

REST (from the project root; ``--env-manager local`` uses this environment, no download)::

    MLFLOW_TRACKING_URI=sqlite:///.mlflow/mlflow.db \
        mlflow models serve -m models:/ganpipe-demo-hifigan_v3@champion --env-manager local -h 127.0.0.1 -p 5001
    curl -X POST http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \
        -d '{"inputs": [[[-4.1, ...], ...]], "params": {"input_type": "mel"}}'
    # -> {"predictions": [[[...]]]}  (batch, 1, samples); bad input -> HTTP 400 {"message": ...}
    # an unconditional model: -d '{"inputs": [], "params": {"n": 4, "seed": 7}}'

The model's metadata (``model.metadata.metadata``) holds, for both kinds: ``format``, ``kind``,
``variant``, ``sample_rate``, ``generator_sha256``, ``weights_sha256``, ``training_step``,
``training_run_id``, ``dataset``, ``data_version`` (git commit + dvc.lock hashes of data/features
and data/prepared), ``eval_metrics`` (metrics/eval.json), ``onnx`` (whether the export is inside)
and ``onnx_skipped`` (why not); vocoders also ``mel_config``, ``hop_length``, ``n_mels``,
``min_frames``, ``speakers``; unconditional models ``latent_dim``, ``latent_distribution``,
``samples``, ``labels``, ``max_clips`` and ``rendering``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from ganpipe.inference import ONNX_BACKEND, onnx_session
from ganpipe.lowprec import INT8_ARTIFACT, LOWPREC_BACKENDS, ServingLowPrecision  # lowprec hook (issue #26)

INPUT_TYPES = ("mel", "waveform")
BACKENDS = ("torch", ONNX_BACKEND)  # one vocabulary with ganpipe.inference
_BACKEND_ALIASES = {"onnx": ONNX_BACKEND}  # the name served models answered to first


def _backend(backend: Any) -> str:
    backend = _BACKEND_ALIASES.get(str(backend), str(backend))
    if backend not in BACKENDS + LOWPREC_BACKENDS:  # lowprec hook (issue #26): + LOWPREC_BACKENDS
        raise InputError(f"params 'backend' must be one of {list(BACKENDS + LOWPREC_BACKENDS)}, got {backend!r}")
    return backend
FORMAT = "ganpipe-vocoder/1"  # metadata "format" of a vocoder
UNCONDITIONAL_FORMAT = "ganpipe-unconditional/1"  # ... of an unconditional generator
FORMATS = {"vocoder": FORMAT, "unconditional": UNCONDITIONAL_FORMAT}
MAX_CLIPS = 256  # clips per request of an unconditional model
_CHUNK = 16  # clips generated per forward call (bounds memory; as in the evaluation)


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


def unconditional_signature() -> Any:
    """The pyfunc signature of an unconditional model: no input schema (``x`` is optional: latents
    ``(batch, latent_dim)``, or nothing with params ``n`` + ``seed``); output ``(batch, 1, samples)``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

    params = ParamSchema([
        ParamSpec("n", "long", 0),
        ParamSpec("seed", "long", 0),
        ParamSpec("label", "string", ""),
        ParamSpec("backend", "string", "torch"),
    ])
    return ModelSignature(inputs=None, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 1, -1))]),
                          params=params)


def signature_for(kind: str) -> Any:
    """:func:`model_signature` for vocoders, :func:`unconditional_signature` otherwise."""
    return model_signature() if kind == "vocoder" else unconditional_signature()


def _onnx_session(path: str | None) -> Any:
    if not path:
        raise InputError(f"backend '{ONNX_BACKEND}': this model version has no ONNX export "
                         "(registered with registry.export_onnx: false, or none possible: see metadata "
                         "onnx_skipped); use backend 'torch'")
    return onnx_session(path)


class VocoderCore:
    """The model's logic without MLflow: validation, normalisation, batching, backends."""

    def __init__(self, loaded: Any, onnx_path: str | Path | None = None, int8_path: str | Path | None = None):
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
        self.lowprec = ServingLowPrecision(self, int8_path)  # lowprec hook (issue #26)

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
            self._ort = _onnx_session(self.onnx_path)
        return self._ort

    # -- generation -------------------------------------------------------------------------------
    def _generate(self, mel: torch.Tensor, speaker: int | None, backend: str) -> np.ndarray:
        """Normalised-as-needed mel ``(B, n_mels, F)`` -> ``(B, 1, F * hop)`` float32."""
        if self.normalize:
            mel = (mel - self.mean) / self.std
        spk = None if speaker is None else torch.full((mel.shape[0],), speaker, dtype=torch.long)
        if backend in LOWPREC_BACKENDS:  # lowprec hook (issue #26): onnx-int8 / bf16, or the fp32 fallback
            backend, out = self.lowprec.run(backend, mel, spk)
            if out is not None:
                return out
        if backend == ONNX_BACKEND:
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
        backend = _backend(backend)
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
        if backend in LOWPREC_BACKENDS:  # lowprec hook (issue #26): no int8 export -> error before any work
            self.lowprec.check(backend, spk is not None)
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


class UnconditionalCore:
    """An unconditional generator's serving logic without MLflow: latents (given, or drawn from
    ``n`` + ``seed``), labels, rendering to audio, validation; see the module doc."""

    def __init__(self, loaded: Any, onnx_path: str | Path | None = None):
        from ganpipe.inference import reference_module

        bundle = loaded.bundle
        if bundle.kind != "unconditional":
            raise InputError(f"variant {bundle.variant} is not an unconditional generator (latent -> waveform)")
        self.described = bundle.description
        if not self.described.makes_audio:
            raise InputError(f"variant {bundle.variant} generates {bundle.output_spec.name} "
                             f"{bundle.output_spec.shape}, not audio; only generators of audio clips are served")
        self.loaded = loaded
        self.variant = bundle.variant
        self.module = reference_module(loaded.generator, "cpu")  # eval, no grad
        self.latent_dim = int(self.module.latent_dim)
        if self.described.needs_statistics(self.module):
            raise InputError(f"this {self.variant}'s spectrogram statistics were never fitted: its output cannot be "
                             "turned into audio")
        self.sample_rate = int(bundle.sample_rate)
        self.samples = int(self.described.clip_samples)
        self.conditional = bundle.conditioning != "none"
        self.labels = list(loaded.label_names) if self.conditional else []
        if self.conditional and len(self.labels) != bundle.n_classes:
            self.labels = [str(i) for i in range(bundle.n_classes)]  # names lost: indices still work
        self.onnx_path = str(onnx_path) if onnx_path else None
        self._ort: Any = None
        self._rng_lock = threading.Lock()

    # -- parameters -------------------------------------------------------------------------------
    def _label(self, label: Any) -> int | None:
        label = "" if label is None else str(label).strip()
        if not self.conditional:
            if label:
                raise InputError(f"this model is not class-conditioned; leave 'label' empty (got {label!r})")
            return None
        if not label:
            return None  # the clips cycle through the classes
        if label in self.labels:
            return self.labels.index(label)
        if label.isdigit() and int(label) < len(self.labels):
            return int(label)
        raise InputError(f"unknown label {label!r}; this model knows {self.labels} (or their index)")

    def _latents(self, x: Any, n: Any, seed: Any) -> torch.Tensor:
        try:
            n = int(n or 0)
            seed = int(seed or 0)
        except (TypeError, ValueError):
            raise InputError(f"params 'n' and 'seed' must be integers, got n={n!r}, seed={seed!r}") from None
        if x is not None:
            try:
                x = np.asarray(x, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise InputError(f"input is not a numeric array: {exc}") from None
            if x.size == 0:
                x = None  # "no latents" (REST: "inputs": [])
        if x is not None:
            if n:
                raise InputError(f"give either latents x (here of shape {x.shape}) or params 'n' (here {n}), not both")
            if x.ndim != 2 or x.shape[1] != self.latent_dim:
                raise InputError(f"latents must be a 2-D array (batch, latent_dim={self.latent_dim}), got shape "
                                 f"{x.shape}")
            if not 1 <= x.shape[0] <= MAX_CLIPS:
                raise InputError(f"at most {MAX_CLIPS} latents per request, got {x.shape[0]}")
            if not np.isfinite(x).all():
                raise InputError("latents contain NaN or infinite values")
            return torch.from_numpy(np.ascontiguousarray(x))
        if not n:
            raise InputError(f"give latents x (batch, latent_dim={self.latent_dim}) or params 'n' "
                             f"(1..{MAX_CLIPS} clips) and 'seed'")
        if not 1 <= n <= MAX_CLIPS:
            raise InputError(f"params 'n' must lie in [1, {MAX_CLIPS}], got {n}")
        if not 0 <= seed < 2 ** 63:
            raise InputError(f"params 'seed' must lie in [0, 2**63), got {seed}")
        return self.draw_latents(n, seed)

    def draw_latents(self, n: int, seed: int) -> torch.Tensor:
        """``(n, latent_dim)`` latents from the generator's own ``sample_latent`` under
        ``torch.manual_seed(seed)``; the process's random state is left as it was."""
        with self._rng_lock, torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.module.sample_latent(n, device="cpu").float()

    # -- generation -------------------------------------------------------------------------------
    def _session(self) -> Any:
        if self._ort is None:
            if not self.described.onnx_exportable:
                raise InputError(f"backend '{ONNX_BACKEND}': {self.variant} has no ONNX export (its Griffin-Lim "
                                 "rendering is not exported); use backend 'torch'")
            self._ort = _onnx_session(self.onnx_path)
        return self._ort

    def _generate(self, z: torch.Tensor, labels: torch.Tensor | None, backend: str) -> np.ndarray:
        if backend == ONNX_BACKEND:
            feeds = {"z": z.numpy()}
            if labels is not None:
                feeds["labels"] = labels.numpy()
            return np.asarray(self._session().run(["wav"], feeds)[0], dtype=np.float32)
        with torch.inference_mode():
            out = self.module(z, **({} if labels is None else {"labels": labels}))
            out = self.described.to_audio(self.module, out)
        return out.float().cpu().numpy()

    def predict(self, x: Any = None, n: Any = 0, seed: Any = 0, label: Any = "", backend: str = "torch") -> np.ndarray:
        backend = _backend(backend)
        if backend in LOWPREC_BACKENDS:  # lowprec hook (issue #26): vocoders only
            raise InputError(f"backend {backend!r} serves vocoders only; use 'torch' or '{ONNX_BACKEND}'")
        z = self._latents(x, n, seed)
        fixed = self._label(label)
        batch = z.shape[0]
        labels = None
        if self.conditional:
            labels = (torch.full((batch,), fixed, dtype=torch.long) if fixed is not None
                      else torch.arange(batch, dtype=torch.long) % len(self.labels))
        if backend == ONNX_BACKEND:
            self._session()  # fail before any work when there is no export
        outs = [self._generate(z[i:i + _CHUNK], None if labels is None else labels[i:i + _CHUNK], backend)
                for i in range(0, batch, _CHUNK)]
        return np.ascontiguousarray(np.concatenate(outs), dtype=np.float32)


def make_core(loaded: Any, onnx_path: str | Path | None = None,
              int8_path: str | Path | None = None) -> VocoderCore | UnconditionalCore:
    """The serving core for the generator's kind; :class:`InputError` when it cannot be served."""
    if loaded.bundle.kind == "vocoder":
        return VocoderCore(loaded, onnx_path, int8_path)  # lowprec hook (issue #26): int8_path
    return UnconditionalCore(loaded, onnx_path)


# predict() params of each core (the names of its signature's params)
_CORE_PARAMS = {VocoderCore: ("input_type", "lengths", "speaker", "backend"),
                UnconditionalCore: ("n", "seed", "label", "backend")}


class GanGeneratorModel(PythonModel):
    """MLflow pyfunc: artifacts ``generator`` (ganpipe generator file) and optional ``onnx``; serves
    the generator's kind (vocoder or unconditional, from the file)."""

    # The signature is explicit (type hints cannot express the 3-D tensor and the params); this
    # tells MLflow not to look for type hints on predict() (and not to warn about their absence).
    _skip_type_hint_validation = True

    def load_context(self, context):
        from ganpipe.generator_io import load_generator

        artifacts = context.artifacts
        self.core = make_core(load_generator(artifacts["generator"]), artifacts.get("onnx"),
                              artifacts.get(INT8_ARTIFACT))  # lowprec hook (issue #26)

    def predict(self, context, model_input, params=None):
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

        params = dict(params or {})
        if hasattr(model_input, "to_numpy"):  # a DataFrame from a client that ignored the signature
            model_input = model_input.to_numpy()
        kwargs = {k: params[k] for k in _CORE_PARAMS[type(self.core)] if params.get(k) is not None}
        try:
            return self.core.predict(model_input, **kwargs)
        except InputError as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None


GanVocoderModel = GanGeneratorModel  # the name the loader of earlier registered versions imports

# The file MLflow runs to build the model at load time ("models from code": no pickled objects).
LOADER_SOURCE = '''"""ganpipe generator: MLflow models-from-code entry point (see ganpipe/serving.py)."""
import mlflow

from ganpipe.serving import GanGeneratorModel

mlflow.models.set_model(GanGeneratorModel())
'''
