"""The registered model: an MLflow pyfunc around a ganpipe generator file (``models/generator.pt``):
its class, signature, metadata and the loader file copied into every model folder.

``mlflow.pyfunc.load_model("models:/NAME@champion")`` (or ``mlflow models serve -m ...``) gives a
model whose ``predict(x, params=...)`` returns waveforms. One pyfunc class (:class:`GanGeneratorModel`)
serves both kinds of generator; it reads ``kind`` from the generator file and hands the request to
:class:`~ganpipe.serving.cores.VocoderCore` (mel -> waveform) or
:class:`~ganpipe.serving.cores.UnconditionalCore` (latent -> waveform). The
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
  model with ``registry.export_onnx: true``; same output to ~1e-4).

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

import math
from typing import Any

import numpy as np
from mlflow.pyfunc import PythonModel

from ganpipe.lowprec import INT8_ARTIFACT
from ganpipe.serving.contract import FORMATS, MAX_CLIPS, InputError
from ganpipe.serving.cores import UnconditionalCore, VocoderCore, make_core


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


def kind_metadata(loaded: Any, core: Any) -> tuple[dict[str, Any], Any, str]:
    """Kind-specific metadata, the input example and the registered model's description."""
    if loaded.bundle.kind == "vocoder":
        cfg = loaded.mel_config
        meta = {
            "mel_config": cfg.to_dict(), "sample_rate": cfg.sample_rate, "hop_length": cfg.hop_length,
            "n_mels": cfg.n_mels, "min_frames": int(loaded.bundle.min_frames or 1),
            "speakers": list(loaded.label_names) if loaded.bundle.conditioning != "none" else [],
            "input": "float32 (batch, n_mels, frames) un-normalised project log-mel; params input_type=waveform: "
                     "(batch, 1, samples) at sample_rate (copy-synthesis); see ganpipe/serving/pyfunc.py",
            "output": "float32 (batch, 1, frames * hop_length) waveform in [-1, 1]",
        }
        # a short silent-level mel: documents the request format (serving_input_example.json)
        example = (np.full((1, cfg.n_mels, max(8, int(loaded.bundle.min_frames or 1))),
                           math.log(cfg.clamp) / (math.log(10) if cfg.log_base == "10" else 1.0),
                           dtype=np.float32), {"input_type": "mel"})
        return meta, example, ("ganpipe GAN vocoder: log-mel (batch, n_mels, frames) -> waveform (batch, 1, "
                               "frames*hop); see ganpipe/serving/pyfunc.py.")
    meta = {
        "sample_rate": core.sample_rate, "latent_dim": core.latent_dim,
        "latent_distribution": core.described.latent_distribution, "samples": core.samples,
        "labels": core.labels, "max_clips": MAX_CLIPS, "rendering": core.described.rendering,
        "input": f"optional float32 latents (batch, {core.latent_dim}), 1 <= batch <= {MAX_CLIPS}; or none with "
                 f"params n (1..{MAX_CLIPS}) + seed (latents drawn by the generator's sample_latent); "
                 "params label for class-conditioned models; see ganpipe/serving/pyfunc.py",
        "output": f"float32 (batch, 1, {core.samples}) waveform at sample_rate",
    }
    example = core.draw_latents(1, seed=0).numpy()  # one latent the generator itself would draw
    return meta, example, (f"ganpipe unconditional GAN ({core.variant}): latents (batch, {core.latent_dim}) or "
                           f"params n + seed -> waveform (batch, 1, {core.samples}) at {core.sample_rate} Hz; see "
                           "ganpipe/serving/pyfunc.py.")


def model_metadata(loaded: Any, core: Any) -> dict[str, Any]:
    """The model's metadata without the packaging facts (ONNX): format, variant, kind and its kind's
    fields; what a registered model's ``model.metadata.metadata`` holds besides the registry's tags
    (and what :mod:`ganpipe.serving.model` gives a generator file loaded directly)."""
    kind = loaded.bundle.kind
    return {"format": FORMATS[kind], "variant": loaded.bundle.variant, "kind": kind,
            **kind_metadata(loaded, core)[0]}


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
        self.generator_path = artifacts["generator"]  # the consumer API checks its hash
        self.core = make_core(load_generator(artifacts["generator"]), artifacts.get("onnx"),
                              artifacts.get(INT8_ARTIFACT))

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
# Models registered before ganpipe/serving.py became this package import ``ganpipe.serving.GanGeneratorModel``
# (or ``GanVocoderModel``): ganpipe/serving/__init__.py keeps both names.
LOADER_SOURCE = '''"""ganpipe generator: MLflow models-from-code entry point (see ganpipe/serving/pyfunc.py)."""
import mlflow

from ganpipe.serving.pyfunc import GanGeneratorModel

mlflow.models.set_model(GanGeneratorModel())
'''
