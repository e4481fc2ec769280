"""The inference backends of a trained generator: the reference torch module, ONNX export and the
one ONNX Runtime session builder, and the fast vocoder paths (mel -> waveform, same output as the reference).

The reference way (jik876/hifi-gan ``inference.py``) is: remove weight norm, ``eval()``, call the
generator under ``torch.no_grad()``. :func:`prepare_for_inference` builds that reference module on
a copy (the caller's generator keeps its weight norm and training mode) and then, by ``backend``:

``"onnxruntime"``
    exports the weight-norm-free generator with ``torch.onnx.export`` (batch and frame axes
    dynamic, mel [+ speaker ids] in, waveform out) and runs it in an ONNX Runtime
    ``InferenceSession`` on the CPU (``intra_op_num_threads`` = torch's thread count unless
    ``threads`` is given). ORT fuses conv + leaky ReLU, computes the leaky ReLU shared by the
    multi-receptive-field branches once, and its MLAS convolutions beat PyTorch's per-call oneDNN
    path. Measured with 2 threads on 5 s of LJSpeech (benchmarks/bench_inference.py,
    benchmarks/RESULTS.md): on a quiet machine 1.3x (V1) and 1.4-1.6x (V3) the reference's
    speed; with other jobs on the cores 1.9-3x, since PyTorch's OpenMP threads stall on each
    other when one is descheduled and ORT's pool does not. V1 is compute-bound (~53 GFLOP per
    audio second, ORT sustains ~150 GFLOP/s on 2 AVX2 cores), which caps what any exact fp32 path
    can gain there. Export takes ~0.2 s (V3) to ~1-3 s (V1).
``"torch"``
    the reference module itself, called under ``torch.inference_mode()`` (any device).
``"compile"``
    ``torch.compile`` of the reference module (inductor, weight freezing). On a 2-thread CPU it
    took ~50 s to compile HiFi-GAN V3 for a 1.2x gain, so it is never chosen automatically; it is
    there for GPUs and long-running servers.
``"auto"`` (default)
    ``"onnxruntime"`` on the CPU when ``onnxruntime`` and ``onnx`` are importable, else
    ``"torch"``; ``"torch"`` on CUDA.

Every fast path is checked once at preparation against the reference forward on a short random
mel (``verify=True``): if the largest absolute difference exceeds ``atol`` (1e-4), ``"auto"`` falls
back to ``"torch"`` with a warning and an explicit backend raises. Generators that draw their own
noise (Parallel WaveGAN: a ``noise`` argument) cannot match any reference call, so ``"auto"`` gives
them the torch path directly.

Tried and not shipped (2 threads, same benchmark): ``torch.jit.freeze`` + ``optimize_for_inference``
1.0x (V1/V3, 8-40 s to build); 1-D convs
rewritten as 2-D so that ORT uses its NCHWc kernels: no steady gain (a layout reorder around
every conv, the residual adds stay NCHW); dilated convs split into polyphase dense convs: mixed
(+15% for kernel 11 / dilation 5, -10% for kernel 3); OpenVINO 2026.4 on the same ONNX model:
slower than ORT on both V1 and V3.

>>> fast = prepare_for_inference(generator)          # once
>>> wav = fast(mel)                                  # (B, n_mels, F) -> (B, 1, F * hop)
>>> wav = run_generator(generator, mel[0])          # convenience: (n_mels, F) -> (T,)
"""

from __future__ import annotations

import copy
import inspect
import io
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ganpipe.serving.contract import ONNX_BACKEND

Backend = Literal["auto", "onnxruntime", "torch", "compile"]
INFERENCE_BACKENDS: tuple[str, ...] = ("auto", "onnxruntime", "torch", "compile")  # prepare_for_inference's
# The one tolerance of an ONNX (or compiled) path against the reference forward: here, at registration
# (ganpipe/serving/packaging.py) and in the served model's contract (ganpipe/serving/cores.py).
DEFAULT_ATOL = 1e-4
_PROBE_FRAMES = 32


def onnxruntime_available() -> bool:
    try:
        import onnx  # noqa: F401  (torch.onnx.export needs it)
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def reference_module(generator: nn.Module, device: str | torch.device | None = None) -> nn.Module:
    """The reference inference module: a copy of ``generator`` without weight norm (folded into
    plain weights), in eval mode, with ``requires_grad`` off. ``generator`` is not changed."""
    from ganpipe.models.normalization import remove_weight_norm

    module = copy.deepcopy(generator)
    remove_weight_norm(module)
    if device is not None:
        module = module.to(device)
    module.eval()
    module.requires_grad_(False)
    return module


def _draws_noise(generator: nn.Module) -> bool:
    """Generators that sample their own noise (Parallel WaveGAN) cannot match a reference call."""
    try:
        return "noise" in inspect.signature(generator.forward).parameters
    except (TypeError, ValueError):
        return False


def _speaker_conditioned(generator: nn.Module) -> bool:
    return getattr(generator, "speaker_conditioning", None) is not None


class _PositionalConditioning(nn.Module):
    """Positional ``(x, condition)`` forward for the ONNX exporter: calls ``module(x, **{keyword:
    condition})`` (``speaker`` for vocoders, ``labels`` for class-conditioned WaveGAN)."""

    def __init__(self, module: nn.Module, keyword: str):
        super().__init__()
        self.module = module
        self.keyword = keyword

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        return self.module(x, **{self.keyword: condition})


def _write_onnx(module: nn.Module, args: tuple[Tensor, ...], names: list[str], axes: dict[str, dict[int, str]],
                opset: int, path: str | Path | io.BytesIO | None) -> bytes:
    """``torch.onnx.export`` of ``module`` (output ``wav``); returns the bytes, also written to ``path``."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # the TorchScript-based exporter is deprecated in favour of dynamo=True, which needs the
        # onnxscript package; the trace also warns about shape checks baked in as constants.
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, buffer, input_names=names, output_names=["wav"],
                          dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
    data = buffer.getvalue()
    if isinstance(path, io.BytesIO):
        path.write(data)
    elif path is not None:
        Path(path).write_bytes(data)
    return data


def export_onnx(generator: nn.Module, path: str | Path | io.BytesIO | None = None, *,
                opset: int = 17, probe_frames: int = _PROBE_FRAMES) -> bytes:
    """Export ``generator`` (weight norm removed on a copy) to ONNX; returns the model bytes and
    writes them to ``path`` when given. Inputs ``mel`` ``(B, n_mels, F)`` [and ``speaker`` int64
    ``(B,)`` for a speaker-conditioned generator]; output ``wav`` ``(B, 1, F * hop)``; B and F dynamic."""
    module = generator if _is_reference(generator) else reference_module(generator, "cpu")
    module = module.cpu()
    n_mels = int(getattr(module, "n_mels", 80))
    frames = max(int(getattr(module, "min_frames", 1) or 1), probe_frames)
    mel = torch.randn(1, n_mels, frames)
    names, axes = ["mel"], {"mel": {0: "batch", 2: "frames"}, "wav": {0: "batch", 2: "samples"}}
    args: tuple[Tensor, ...] = (mel,)
    if _speaker_conditioned(module):
        module = _PositionalConditioning(module, "speaker")
        args = (mel, torch.zeros(1, dtype=torch.long))
        names.append("speaker")
        axes["speaker"] = {0: "batch"}
    return _write_onnx(module, args, names, axes, opset, path)


def export_latent_onnx(generator: nn.Module, path: str | Path | io.BytesIO | None = None, *,
                       opset: int = 17) -> bytes:
    """ONNX export of a latent -> waveform generator (WaveGAN; weight norm removed on a copy):
    inputs ``z`` float32 ``(B, latent_dim)`` [and ``labels`` int64 ``(B,)`` when class-conditioned],
    output ``wav`` ``(B, 1, samples)``; B dynamic. Returns the bytes, also written to ``path``."""
    module = reference_module(generator, "cpu")
    args: tuple[Tensor, ...] = (torch.zeros(2, int(module.latent_dim)),)
    names, axes = ["z"], {"z": {0: "batch"}, "wav": {0: "batch"}}
    if getattr(module, "class_conditioning", None) is not None:
        module = _PositionalConditioning(module, "labels")
        args = (*args, torch.zeros(2, dtype=torch.long))
        names.append("labels")
        axes["labels"] = {0: "batch"}
    return _write_onnx(module, args, names, axes, opset, path)


def _is_reference(module: nn.Module) -> bool:
    return getattr(module, "_ganpipe_reference", False)


class InferenceGenerator(nn.Module):
    """A prepared generator: ``module(mel, speaker=None) -> waveform``.

    ``mel`` is ``(B, n_mels, F)`` (or ``(n_mels, F)``, giving ``(1, 1, T)``) on any device; the
    waveform ``(B, 1, F * hop)`` comes back on the device of ``mel`` (float32). Attributes:
    ``backend``, ``device``, ``hop_length``, ``n_mels``, ``min_frames``, ``prepare_seconds`` (time
    to build it, export included; compilation happens on the first call for ``"compile"``),
    ``verified_max_abs_diff`` (against the reference on the probe, ``None`` when not verified).
    """

    def __init__(self, reference: nn.Module, backend: str, device: torch.device, threads: int | None,
                 spinning: bool):
        super().__init__()
        self.backend = backend
        self.device = device
        self.hop_length = getattr(reference, "hop_length", None)
        self.n_mels = getattr(reference, "n_mels", None)
        self.min_frames = int(getattr(reference, "min_frames", 1) or 1)
        self.speaker_conditioned = _speaker_conditioned(reference)
        self.prepare_seconds = 0.0
        self.verified_max_abs_diff: float | None = None
        self._session: Any = None
        self._compiled: Any = None
        self.module: nn.Module | None = None
        if backend == ONNX_BACKEND:
            self._session = onnx_session(export_onnx(reference), threads, spinning)
        else:
            self.module = reference
            if backend == "compile":
                self._compiled = torch.compile(reference, options={"freezing": True})

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        mel = torch.as_tensor(mel)
        if mel.dim() == 2:
            mel = mel.unsqueeze(0)
        if mel.dim() != 3:
            raise ValueError(f"mel must be (B, n_mels, F) or (n_mels, F), got shape {tuple(mel.shape)}")
        if self.n_mels is not None and mel.shape[1] != self.n_mels:
            raise ValueError(f"mel has {mel.shape[1]} bins, the generator takes {self.n_mels}")
        if mel.shape[-1] < self.min_frames:
            raise ValueError(f"need at least {self.min_frames} mel frames, got {mel.shape[-1]}")
        if self.speaker_conditioned != (speaker is not None):
            raise ValueError("pass speaker ids exactly when the generator is speaker-conditioned "
                             f"(it {'is' if self.speaker_conditioned else 'is not'})")
        if self._session is not None:
            return self._run_ort(mel, speaker)
        out_device = mel.device
        kw = {} if speaker is None else {"speaker": torch.as_tensor(speaker).to(self.device)}
        with torch.inference_mode():
            fn = self._compiled if self._compiled is not None else self.module
            wav = fn(mel.to(self.device, torch.float32), **kw)
        return wav.to(out_device)

    def _run_ort(self, mel: Tensor, speaker: Tensor | None) -> Tensor:
        feeds = {"mel": np.ascontiguousarray(mel.detach().to("cpu", torch.float32).numpy())}
        if speaker is not None:
            feeds["speaker"] = torch.as_tensor(speaker).detach().to("cpu", torch.long).reshape(-1).numpy()
        wav = torch.from_numpy(self._session.run(["wav"], feeds)[0])
        return wav if mel.device.type == "cpu" else wav.to(mel.device)

    def extra_repr(self) -> str:
        return f"backend={self.backend}, device={self.device}, hop_length={self.hop_length}"


def onnx_session(model: bytes | str | Path, threads: int | None = None, spinning: bool = False) -> Any:
    """The one ONNX Runtime session builder (CPU): an exported model's bytes or file."""
    import onnxruntime as ort

    if isinstance(model, Path):
        model = str(model)

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads spin by default; on a shared machine that burns the other jobs' cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _resolve_backend(backend: str, device: torch.device, generator: nn.Module) -> str:
    if backend not in INFERENCE_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(INFERENCE_BACKENDS)}")
    if backend == "auto":
        fast = device.type == "cpu" and onnxruntime_available() and not _draws_noise(generator)
        return ONNX_BACKEND if fast else "torch"
    if backend == ONNX_BACKEND:
        if device.type != "cpu":
            raise ValueError("the onnxruntime backend runs on the CPU only; use backend='torch' on "
                             f"{device.type}")
        if not onnxruntime_available():
            raise ImportError("backend='onnxruntime' needs the onnx and onnxruntime packages")
    return backend


def _default_device(generator: nn.Module) -> torch.device:
    for tensor in list(generator.parameters()) + list(generator.buffers()):
        return tensor.device
    return torch.device("cpu")


def _probe(reference: nn.Module, device: torch.device) -> tuple[Tensor, Tensor | None]:
    n_mels = int(getattr(reference, "n_mels", 80))
    frames = max(int(getattr(reference, "min_frames", 1) or 1), _PROBE_FRAMES)
    gen = torch.Generator().manual_seed(0)
    mel = (torch.randn(1, n_mels, frames, generator=gen) - 4.0).to(device)  # log-mel-like level
    speaker = torch.zeros(1, dtype=torch.long, device=device) if _speaker_conditioned(reference) else None
    return mel, speaker


def max_abs_diff(a: Tensor, b: Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max())


def prepare_for_inference(generator: nn.Module, *, backend: Backend | str = "auto",
                          device: str | torch.device | None = None, threads: int | None = None,
                          verify: bool = True, atol: float = DEFAULT_ATOL,
                          spinning: bool = False) -> InferenceGenerator:
    """A fast inference module for a vocoder generator ``(mel[, speaker]) -> waveform``.

    ``generator`` is copied (weight norm removed, eval, no grad); it is not modified. ``device``
    defaults to the generator's; ``threads`` sets ONNX Runtime's intra-op threads (default: torch's
    thread count); ``spinning`` lets idle ORT threads busy-wait (off: kinder to shared machines,
    measured no slower). See the module doc for the backends and the ``verify`` / ``atol`` check.
    The low-precision backends (``contract.LOWPREC_BACKENDS``) are :func:`ganpipe.lowprec.prepare`'s.
    """
    start = time.perf_counter()
    device = torch.device(device) if device is not None else _default_device(generator)
    chosen = _resolve_backend(backend, device, generator)
    reference = reference_module(generator, device)
    reference._ganpipe_reference = True  # type: ignore[attr-defined]
    try:
        fast = InferenceGenerator(reference, chosen, device, threads, spinning)
    except Exception as exc:  # export / session creation failed
        if backend != "auto":
            raise
        warnings.warn(f"{chosen} inference path unavailable ({exc}); using the torch path", stacklevel=2)
        fast = InferenceGenerator(reference, "torch", device, threads, spinning)
    if verify and fast.backend != "torch":
        mel, speaker = _probe(reference, device)
        with torch.inference_mode():
            expected = reference(mel, **({} if speaker is None else {"speaker": speaker}))
        diff = max_abs_diff(fast(mel, speaker), expected)
        fast.verified_max_abs_diff = diff
        if not diff <= atol:
            message = (f"{fast.backend} inference output differs from the reference forward by {diff:.3g} "
                       f"(> atol {atol:g})")
            if backend != "auto":
                raise RuntimeError(message)
            warnings.warn(message + "; using the torch path", stacklevel=2)
            fast = InferenceGenerator(reference, "torch", device, threads, spinning)
    fast.prepare_seconds = time.perf_counter() - start
    return fast


# Prepared modules of plain generators passed to run_generator(), reused while their weights are unchanged.
_CACHE: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, InferenceGenerator]] = weakref.WeakKeyDictionary()


def _fingerprint(generator: nn.Module, backend: str, device: torch.device | None) -> tuple:
    tensors = list(generator.parameters()) + list(generator.buffers())
    # _version counts in-place changes (optimizer steps, load_state_dict), so new weights re-prepare.
    return (backend, str(device), generator.training,
            tuple((id(t), t._version, t.data_ptr()) for t in tensors))


def run_generator(generator: nn.Module, mel: Tensor | np.ndarray, speaker: Tensor | int | None = None, *,
               backend: Backend | str = "auto", device: str | torch.device | None = None) -> Tensor:
    """Waveform of ``mel`` with the fast path: ``(n_mels, F)`` -> ``(F * hop,)``,
    ``(B, n_mels, F)`` -> ``(B, 1, F * hop)``.

    ``generator`` is a plain generator (prepared with ``backend`` on first use, then reused while
    its weights are unchanged) or an :class:`InferenceGenerator`. ``speaker``: id(s) for a
    speaker-conditioned generator.
    """
    mel_t = torch.as_tensor(mel, dtype=torch.float32) if isinstance(mel, np.ndarray) else mel
    single = mel_t.dim() == 2
    if isinstance(generator, InferenceGenerator):
        fast = generator
    else:
        key = _fingerprint(generator, str(backend), None if device is None else torch.device(device))
        cached = _CACHE.get(generator)
        if cached is not None and cached[0] == key:
            fast = cached[1]
        else:
            fast = prepare_for_inference(generator, backend=backend, device=device)
            _CACHE[generator] = (key, fast)
    if speaker is not None:
        speaker = torch.as_tensor(speaker, dtype=torch.long).reshape(-1)
    wav = fast(mel_t.unsqueeze(0) if single else mel_t, speaker)
    return wav[0, 0] if single else wav
