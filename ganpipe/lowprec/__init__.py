"""Low-precision CPU inference backends for vocoders: ``onnx-int8`` and ``bf16``.

``onnx-int8``
    ONNX Runtime on a statically quantized export (:mod:`ganpipe.lowprec.int8`: QOperator, uint8
    activations calibrated on the model's own mels, int8 per-channel weights, first and last layers
    kept in fp32). Needs calibration mels (the Python API) or the ``onnx_int8`` export inside a
    registered model (``registry.export_int8: true``).
``bf16``
    the torch reference module under ``torch.autocast("cpu", torch.bfloat16)`` (oneDNN bf16
    convolutions and matmuls, everything else in fp32).

Each needs a CPU feature (:mod:`ganpipe.lowprec.cpu_features`: ``avx512_bf16`` for bf16, AVX2 int8
dot products at least for int8); without it the backend falls back to the fp32 path (ONNX Runtime
where available, else torch) with one :class:`LowPrecisionFallback` warning per process and backend,
naming the missing feature. ``force=True`` (benchmarks) runs the backend anyway.

Quality against fp32 and ground truth, and speed: benchmarks/bench_low_precision.py and
benchmarks/RESULTS.md (2026-12-06). The 2-core AMD EPYC these were measured on is a Zen 3 (family 25,
model 1): AVX2 only, no AVX-512 at all (no VNNI, no BF16), whatever the issue assumed; so int8 ran on
MLAS's AVX2 u8s8 kernels and bf16 falls back to fp32 here. Neither backend is chosen by ``"auto"``:
a low-precision backend is asked for by name.

This package holds all the logic; it sits above ganpipe/serving/backends.py (whose export and
ONNX Runtime session it uses) and below ganpipe/serving/cores.py (the served model); :func:`prepare`
is ``prepare_for_inference`` for every backend name, the low-precision ones included.
"""

from __future__ import annotations

import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.lowprec.cpu_features import missing_feature
from ganpipe.serving.contract import LOWPREC_BACKENDS

INT8, BF16 = LOWPREC_BACKENDS  # "onnx-int8", "bf16": the one vocabulary is the served contract's
INT8_ARTIFACT = "onnx_int8"  # the registered model's artifact name of the int8 export
# The quality bound against our fp32 path (ground-truth MCD no more than 0.05 dB higher, PESQ no
# more than 0.05 lower) on the ljspeech-mini clips through the published LJ V1.
QUALITY_BOUND = {"mcd_db": 0.05, "pesq": 0.05}
# Backends that met QUALITY_BOUND there, offered by default in the docs and guarded by
# tests/serving/test_published_v1.py; the others stay selectable by name. None yet (benchmarks/RESULTS.md,
# 2026-12-06): onnx-int8 kept PESQ (-0.016) but its ground-truth MCD was +0.080 dB over fp32 on 12
# held-out clips; bf16 was not measured on a CPU with AVX-512 BF16 (this one has none: fp32 fallback).
OFFERED: tuple[str, ...] = ()


class LowPrecisionFallback(UserWarning):
    """A low-precision backend was asked for on a CPU without the instructions it needs: fp32 runs instead."""


_warned: set[tuple[str, str]] = set()
_warn_lock = threading.Lock()


def fallback_reason(backend: str) -> str | None:
    """Why ``backend`` cannot run fast on this CPU (the missing feature), or ``None``."""
    missing = missing_feature(backend)
    if missing is None:
        return None
    return f"backend {backend!r} needs the CPU feature {missing}, which this CPU lacks: using fp32"


def warn_fallback(backend: str, reason: str) -> None:
    """One :class:`LowPrecisionFallback` per process and (backend, reason)."""
    with _warn_lock:
        if (backend, reason) in _warned:
            return
        _warned.add((backend, reason))
    warnings.warn(reason, LowPrecisionFallback, stacklevel=3)


def reset_warnings() -> None:
    """Forget which fallbacks were warned about (tests)."""
    with _warn_lock:
        _warned.clear()


def bf16_forward(module: Any, mel: Any, **kwargs: Any) -> Any:
    """``module(mel)`` with conv / matmul in bf16 (CPU autocast); output float32."""
    import torch

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(mel.to(torch.float32), **kwargs)
    return out.float()


def _bf16_module(module: Any) -> Any:
    """``module`` wrapped: its forward under bf16 autocast, output float32."""
    from torch import nn

    # the class is built here so that importing ganpipe.lowprec does not import torch
    class Bf16(nn.Module):
        def __init__(self, inner: nn.Module):
            super().__init__()
            self.inner = inner
            for name in ("hop_length", "n_mels", "min_frames", "speaker_conditioning"):
                if hasattr(inner, name):
                    setattr(self, name, getattr(inner, name))

        def forward(self, mel, **kwargs):
            return bf16_forward(self.inner, mel, **kwargs)

    return Bf16(module)


def prepare_low_precision(generator: Any, backend: str, *, device: Any = None, threads: int | None = None,
                          spinning: bool = False, calibration: Any = None, int8_model: bytes | str | Path | None = None,
                          force: bool = False) -> Any:
    """An :class:`~ganpipe.serving.backends.InferenceGenerator` running ``backend`` (``onnx-int8`` or ``bf16``),
    or the fp32 one with a :class:`LowPrecisionFallback` warning when the CPU lacks the feature
    (unless ``force``). ``onnx-int8`` needs ``calibration`` (the model's own mels, ``(n_mels, F)``
    arrays) or an already quantized ``int8_model``."""
    import torch

    from ganpipe.serving import backends as inf

    if backend not in LOWPREC_BACKENDS:
        raise ValueError(f"not a low-precision backend: {backend!r} ({', '.join(LOWPREC_BACKENDS)})")
    device = torch.device(device) if device is not None else inf._default_device(generator)
    if device.type != "cpu":
        raise ValueError(f"backend {backend!r} runs on the CPU only; got device {device}")
    reason = None if force else fallback_reason(backend)
    if reason is not None:
        warn_fallback(backend, reason)
        fast = inf.prepare_for_inference(generator, backend="auto", device=device, threads=threads,
                                         spinning=spinning)
        fast.fallback_reason = reason
        return fast
    start = time.perf_counter()
    reference = inf.reference_module(generator, device)
    reference._ganpipe_reference = True
    fast = inf.InferenceGenerator(reference, "torch", device, threads, spinning)
    fast.backend = backend
    fast.fallback_reason = None
    fast.lowprec_info = {}
    if backend == INT8:
        if int8_model is None:
            if calibration is None:
                raise ValueError("backend 'onnx-int8' needs calibration= (some of the model's own mels, "
                                 "(n_mels, frames) arrays) or int8_model= (a quantized export)")
            from ganpipe.lowprec.int8 import export_int8

            int8_model, fast.lowprec_info = export_int8(reference, calibration)
        fast._session = inf.onnx_session(int8_model, threads, spinning)
        fast.module = None
    else:
        fast.module = _bf16_module(reference)
    mel, speaker = inf._probe(reference, device)
    with torch.inference_mode():
        expected = reference(mel, **({} if speaker is None else {"speaker": speaker}))
    got = fast(mel, speaker)
    if not torch.isfinite(got).all():
        raise RuntimeError(f"{backend} output is not finite on the probe mel")
    fast.verified_max_abs_diff = inf.max_abs_diff(got, expected)  # recorded, not bounded: lossy by design
    fast.prepare_seconds = time.perf_counter() - start
    return fast


def prepare(generator: Any, backend: str = "auto", **kwargs: Any) -> Any:
    """``prepare_for_inference`` for every backend name: ``onnx-int8`` / ``bf16`` here (see
    :func:`prepare_low_precision`), the fp32 ones in :mod:`ganpipe.serving.backends`."""
    from ganpipe.serving.backends import prepare_for_inference

    if backend in LOWPREC_BACKENDS:
        return prepare_low_precision(generator, backend, **kwargs)
    kwargs.pop("calibration", None)
    return prepare_for_inference(generator, backend=backend, **kwargs)


class ServingLowPrecision:
    """The served model's low-precision backends (hooked into ganpipe.serving.cores.VocoderCore._generate,
    after its normalisation): :meth:`run` gives ``(backend, output)``: the output ``(B, 1, T)``
    float32, or ``None`` with the fp32 backend to run instead (the CPU lacks the feature)."""

    def __init__(self, core: Any, int8_path: str | Path | None):
        self.core = core
        self.int8_path = str(int8_path) if int8_path else None
        self._int8: Any = None

    def _fp32_backend(self) -> str:
        from ganpipe.serving.contract import ONNX_BACKEND

        return ONNX_BACKEND if self.core.onnx_path else "torch"

    def check(self, backend: str, conditional: bool) -> None:
        """Fail before any work when the request cannot be served (no int8 export, speakers)."""
        from ganpipe.serving.contract import InputError

        if backend != INT8 or fallback_reason(INT8) is not None:
            return
        if conditional:
            raise InputError("backend 'onnx-int8' does not serve speaker-conditioned models; use 'bf16', "
                             "'onnxruntime' or 'torch'")
        if not self.int8_path:
            raise InputError("backend 'onnx-int8': this model version has no int8 export (registered without "
                             "registry.export_int8: true, or none possible: see metadata onnx_int8_skipped); "
                             "use backend 'onnxruntime' or 'torch'")

    def run(self, backend: str, mel: Any, spk: Any) -> tuple[str, np.ndarray | None]:
        reason = fallback_reason(backend)
        if reason is not None:
            warn_fallback(backend, reason)
            return self._fp32_backend(), None
        self.check(backend, spk is not None)
        if backend == INT8:
            if self._int8 is None:
                from ganpipe.serving.backends import onnx_session

                self._int8 = onnx_session(self.int8_path)
            feeds = {"mel": np.ascontiguousarray(mel.numpy(), dtype=np.float32)}
            return backend, np.asarray(self._int8.run(["wav"], feeds)[0], dtype=np.float32)
        out = bf16_forward(self.core.module, mel, **({} if spk is None else {"speaker": spk}))
        return backend, out.cpu().numpy()
