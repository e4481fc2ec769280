"""A registered model's logic without MLflow: the vocoder core (mel or waveform -> waveform) and the
unconditional core (latents, or a number of clips + a seed -> waveforms): validation, normalisation,
batching, the torch and ONNX Runtime backends. The pyfunc model (:mod:`ganpipe.serving.pyfunc`) hands
each request to one; its module doc states the contract they keep.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.lowprec import ServingLowPrecision
from ganpipe.serving.backends import onnx_session, reference_module
from ganpipe.serving.contract import INPUT_TYPES, LOWPREC_BACKENDS, MAX_CLIPS, ONNX_BACKEND, InputError, served_backend
from ganpipe.serving.rules import too_short

_CHUNK = 16  # clips generated per forward call (bounds memory; as in the evaluation)


def name_or_index(value: Any, names: list[str] | None, param: str, conditioning: str, *,
                  required: bool) -> int | None:
    """The one lookup of a speaker or class: ``value`` (one of ``names`` or its index) -> the index.
    An unconditioned model (``names`` None) takes no value; a conditioned one without a value gives
    None unless ``required``. :class:`InputError` names the param and the known names."""
    value = "" if value is None else str(value).strip()
    if names is None:
        if value:
            raise InputError(f"this model is not {conditioning}-conditioned; leave '{param}' empty (got {value!r})")
        return None
    if not value:
        if required:
            raise InputError(f"this model is {conditioning}-conditioned: give params '{param}', one of {names}")
        return None
    if value in names:
        return names.index(value)
    if value.isdigit() and int(value) < len(names):
        return int(value)
    raise InputError(f"unknown {param} {value!r}; this model knows {names} (or their index)")


def _onnx_session(path: str | None) -> Any:
    if not path:
        raise InputError(f"backend '{ONNX_BACKEND}': this model version has no ONNX export "
                         "(registered with registry.export_onnx: false, or none possible: see metadata "
                         "onnx_skipped); use backend 'torch'")
    return onnx_session(path)


class VocoderCore:
    """The model's logic without MLflow: validation, normalisation, batching, backends."""

    def __init__(self, loaded: Any, onnx_path: str | Path | None = None, int8_path: str | Path | None = None):
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
        self.lowprec = ServingLowPrecision(self, int8_path)  # onnx-int8 / bf16 (ganpipe/lowprec/)

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
        if backend in LOWPREC_BACKENDS:  # onnx-int8 / bf16, or the fp32 fallback
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

    def generate(self, mel: torch.Tensor, speaker: int | None, backend: str) -> np.ndarray:
        """Checked un-normalised mel ``(B, n_mels, F)`` -> ``(B, 1, F * hop)``: one block of a streamed
        answer (ganpipe/serving/streaming.py), the same computation as :meth:`predict`'s."""
        return self._generate(mel, speaker, backend)

    def _mel_of(self, wav: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return self.mel(torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))

    def predict(self, x: Any, input_type: str = "mel", lengths: Any = None, speaker: Any = "",
                backend: str = "torch") -> np.ndarray:
        if input_type not in INPUT_TYPES:
            raise InputError(f"params 'input_type' must be one of {list(INPUT_TYPES)}, got {input_type!r}")
        backend = served_backend(backend)
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
        spk = name_or_index(speaker, self.speakers if self.conditional else None, "speaker", "speaker", required=True)
        if backend in LOWPREC_BACKENDS:  # no int8 export: an error before any work
            self.lowprec.check(backend, spk is not None)
        unit, need = ("frames", self.min_frames) if input_type == "mel" else ("samples", self.min_frames * self.hop)
        if message := too_short(min(lens) if lens else length, need, unit, self.hop, self.config.sample_rate):
            raise InputError(message)

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
        backend = served_backend(backend)
        if backend in LOWPREC_BACKENDS:
            raise InputError(f"backend {backend!r} serves vocoders only; use 'torch' or '{ONNX_BACKEND}'")
        z = self._latents(x, n, seed)
        fixed = name_or_index(label, self.labels if self.conditional else None, "label", "class",
                              required=False)  # none: the clips cycle through the classes
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
        return VocoderCore(loaded, onnx_path, int8_path)
    return UnconditionalCore(loaded, onnx_path)
